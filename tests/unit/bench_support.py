"""Helpers shared by the bench's unit tests."""

from __future__ import annotations

from bench.cli import parse_args
from bench.run import context
from bench.workloads import WORKLOADS, WorkloadSettings


def sleep_context(*argv: str) -> context.RunContext:
    """A run context of the sleep workload alone, 100 keys, for the options `argv`, against a
    broker address nothing listens on (nothing here connects)."""
    opts = parse_args(["--num-keys", "100", *argv])
    settings = WorkloadSettings(sleep_ms=opts.worker_sleep_ms)
    return context.RunContext(
        options=opts,
        bootstrap_servers="127.0.0.1:1",
        broker_kind="kafka",
        workloads={"sleep": WORKLOADS["sleep"](settings)},
        cores=2,
    )
