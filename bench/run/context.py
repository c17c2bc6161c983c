"""What a run is: its names (RunSpec), what every run of an invocation shares (RunContext),
and the consumer settings derived from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure.profiling import ProfileSettings
from bench.options import BenchOptions
from bench.workloads import Workload

# tansu holds every group join for about session.timeout.ms / 2 (README.md, "Local brokers").
TANSU_SESSION_TIMEOUT_MS = 6000


@dataclass(frozen=True)
class RunSpec:
    """Names of one run (a mode): which engine, which workload, which topic and group."""

    engine: str
    workload: str
    topic: str
    group_id: str
    profile_stem: str  # pyrallel-<mode>[-<workload>][-r<rate>][-m<members>]
    rate: float | None = None  # open loop: offered records/s
    members: int = 1  # consumer processes in the group


@dataclass
class RunContext:
    """What every run of one invocation shares; `workloads` are set up (bench.workloads)."""

    options: BenchOptions
    bootstrap_servers: str
    broker_kind: str  # kafka | tansu | external
    workloads: Mapping[str, Workload]
    cores: int
    profile: ProfileSettings | None = None


def run_names(
    options: BenchOptions,
    engine: str,
    workload: str,
    run_id: str,
    rate: float | None = None,
    members: int = 1,
) -> RunSpec:
    """Topic and group names; with --workload all both carry the workload as a suffix, an
    open-loop run its rate (-r<R>) and a run of several members their number (-m<N>).

    Without --skip-reset the group name also carries a per-invocation id: a group reused across
    a topic's delete and re-create would resume from offsets of the deleted topic (tansu does
    not forget them), and the run would wait for records that never come.
    """
    suffix = f"-{workload}" if options.workload == "all" else ""
    if rate is not None:
        suffix += f"-r{rate:g}"
    if members > 1:
        suffix += f"-m{members}"
    topic = f"{options.topic_prefix}-{engine}{suffix}"
    group = f"{options.topic_prefix}-{engine}{suffix}-group"
    if not options.skip_reset:
        group += f"-{run_id}"
    stem = f"pyrallel-{engine}{suffix}"
    return RunSpec(engine, workload, topic, group, stem, rate, members)


def kafka_config(ctx: RunContext, group_id: str) -> dict[str, Any]:
    """librdkafka settings of a run's consumer; the user's --kafka-config wins."""
    config: dict[str, Any] = {
        "bootstrap.servers": ctx.bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
    }
    if ctx.broker_kind == "tansu":
        config["session.timeout.ms"] = TANSU_SESSION_TIMEOUT_MS
        config["heartbeat.interval.ms"] = 1000
    config.update(dict(ctx.options.kafka_config))
    return config


def profile_settings(opts: BenchOptions) -> ProfileSettings | None:
    """The --profile-* options, or None without --profile."""
    if not opts.profile:
        return None
    return ProfileSettings(
        directory=Path(opts.profile_dir),
        clock=opts.profile_clock,
        top_n=opts.profile_top_n,
        threads=opts.profile_threads,
        greenlets=opts.profile_greenlets,
    )
