"""bench.overhead's paths: engine[/ordering][/batchN], checked before anything is produced;
and the medians of its rounds."""

from __future__ import annotations

import argparse

import pytest

from bench.overhead import DEFAULT_PATHS, Measured, Median, Path, Round, medians, parse_paths


def test_a_path_names_engine_ordering_and_batch_size() -> None:
    assert parse_paths("async, process/partition ,baseline/unordered/batch500") == [
        Path("async", "key", None),
        Path("process", "partition", None),
        Path("baseline", "unordered", 500),
    ]
    assert Path("async", "unordered", 500).label == "async/unordered/batch500"
    assert Path("process").label == "process/key"


def test_the_default_paths_cover_per_record_and_batch_mode_on_each_ordering_asked() -> None:
    labels = [path.label for path in parse_paths(DEFAULT_PATHS)]
    assert labels == [
        "baseline/key",
        "async/key",
        "process/key",
        "baseline/key/batch500",
        "async/key/batch500",
        "async/unordered/batch500",
    ]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("asyncc", "expected an engine"),
        ("async/sorted", "neither an ordering"),
        ("async/batch0", "neither an ordering"),
        ("async/batchX", "neither an ordering"),
        (" , ", "no path"),
    ],
)
def test_a_bad_path_is_refused_with_what_was_expected(text: str, names: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=names):
        parse_paths(text)


def test_the_medians_take_each_share_within_its_own_round() -> None:
    rounds = [
        Round(Measured(1000.0, 0.5), {"async/key": Measured(200.0, 2.0)}),  # share 0.2
        Round(Measured(2000.0, 0.4), {"async/key": Measured(300.0, 3.0)}),  # share 0.15
        Round(Measured(500.0, 0.6), {"async/key": Measured(150.0, 1.0)}),  # share 0.3
    ]
    summary = medians(rounds)
    assert list(summary) == ["raw", "async/key"]
    assert summary["raw"] == Median(1000.0, 1.0, 0.5)
    # The median share (0.2) is not the median rate over the median raw rate (200 / 1000
    # happens to agree here; 300 / 2000 would not): each share is its own round's.
    assert summary["async/key"] == Median(200.0, 0.2, 2.0)


def test_an_even_number_of_rounds_averages_the_middle_two() -> None:
    rounds = [
        Round(Measured(1000.0, 1.0), {"p": Measured(100.0, 1.0)}),  # share 0.1
        Round(Measured(1000.0, 1.0), {"p": Measured(300.0, 3.0)}),  # share 0.3
    ]
    assert medians(rounds)["p"] == Median(200.0, 0.2, 2.0)
