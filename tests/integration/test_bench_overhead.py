"""`python -m bench.overhead` against Apache Kafka: every path reads every record, in each of
its rounds, and the medians follow."""

from __future__ import annotations

from typing import Any

import pytest

from bench.overhead import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_rounds_of_each_path_then_their_medians(
    kafka_broker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = ["async/key", "process/key", "baseline/unordered/batch50"]
    status = main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--num-messages",
            "2000",
            "--paths",
            ",".join(paths),
            "--rounds",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    rounds = out.split("round ")[1:]
    assert [r.split(":")[0] for r in rounds] == ["1 of 2", "2 of 2"]
    for path in paths:  # a path that did not complete every record raises instead
        assert out.count(f"{path}: ") == 3, out  # once per round, once in the medians
    medians = out.split("median of 2 rounds")[1]
    assert medians.count("of raw") == len(paths)
