"""bench.overhead's paths: engine[/ordering][/batchN], checked before anything is produced."""

from __future__ import annotations

import argparse

import pytest

from bench.overhead import DEFAULT_PATHS, Path, parse_paths


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
