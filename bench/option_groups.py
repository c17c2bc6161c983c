"""The option groups of the benchmark's command line (bench/cli.py builds the parser and
validates across groups): workload, scenarios, consumer settings, outputs, profiling."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.argtypes import (
    int_list,
    kafka_setting,
    key_distribution,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    rate_list,
)
from bench.output.results import DEFAULT_RESULTS_DIR
from bench.workloads import ALL_WORKLOADS, WORKLOAD_NAMES, WORKLOADS

WORKLOAD_CHOICES = (*WORKLOAD_NAMES, "all")
ORDERINGS = ("key", "partition", "unordered")
PROFILE_CLOCKS = ("wall", "cpu")
DEFAULT_PROFILE_DIR = DEFAULT_RESULTS_DIR / "profiles"


def add_workload_options(parser: argparse.ArgumentParser) -> None:
    """The workload options (every mode)."""
    workload = parser.add_argument_group("workload (applies to every mode)")
    workload.add_argument(
        "--workload",
        choices=WORKLOAD_CHOICES,
        default="sleep",
        help="per-record work ("
        + "; ".join(f"{name}: {w.summary}" for name, w in WORKLOADS.items())
        + f"); 'all' runs {', '.join(ALL_WORKLOADS)} in turn with suffixed topic/group names",
    )
    workload.add_argument(
        "--worker-sleep-ms",
        type=non_negative_float,
        default=5.0,
        help="per-record sleep of the sleep workload",
    )
    workload.add_argument(
        "--worker-cpu-iterations",
        type=positive_int,
        default=1000,
        help="SHA-256 chain iterations of the cpu workload",
    )
    workload.add_argument(
        "--cpu-service-ms",
        type=positive_float,
        default=None,
        help="cpu workload: its time per record on one core, for the bound (default: measured "
        "at start; the container driver measures it once and passes it to every mode)",
    )
    workload.add_argument(
        "--worker-pycpu-iterations",
        type=positive_int,
        default=5000,
        help="pure-Python arithmetic steps of the pycpu workload, after its JSON decode",
    )
    workload.add_argument(
        "--pycpu-service-ms",
        type=positive_float,
        default=None,
        help="pycpu workload: its time per record on one core, for the bound (default: "
        "measured at start)",
    )
    workload.add_argument(
        "--worker-io-sleep-ms",
        type=non_negative_float,
        default=5.0,
        help="delay of the loopback server answering the io workload",
    )
    workload.add_argument(
        "--worker-bulk-fixed-ms",
        type=non_negative_float,
        default=5.0,
        help="fixed part of a bulk workload call",
    )
    workload.add_argument(
        "--worker-bulk-per-record-ms",
        type=non_negative_float,
        default=0.05,
        help="part of a bulk workload call per record in it",
    )


def add_scenario_options(parser: argparse.ArgumentParser) -> None:
    """The scenario options (every mode and workload)."""
    scenario = parser.add_argument_group("scenarios (apply to every mode and workload)")
    scenario.add_argument(
        "--key-distribution",
        type=key_distribution,
        default="uniform",
        help="keys of the produced records: uniform, zipf:S (exponent S over --num-keys) or "
        "hot:F (key-0 carries the fraction F)",
    )
    scenario.add_argument(
        "--stuck-key-ms",
        type=non_negative_float,
        default=0.0,
        help="the first record of one key takes this long instead of the service time "
        "(0: none); reports the other keys' throughput meanwhile",
    )
    scenario.add_argument(
        "--rate",
        type=rate_list,
        default=None,
        metavar="R[,R...]",
        help="open loop: produce at R records/s while consuming, one run per value "
        "(a latency-vs-rate curve); default: closed loop (backlog produced first)",
    )
    scenario.add_argument(
        "--warmup-s",
        type=non_negative_float,
        default=3.0,
        metavar="SECONDS",
        help="open loop: produce at the rate for this long before the measured records; "
        "the warm-up's records are consumed but left out of every figure (0: none)",
    )
    scenario.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="open loop: after each run, the same records at the same rate consumed by a plain "
        "confluent-kafka loop: the end-to-end latency before any consumer work",
    )
    scenario.add_argument(
        "--members",
        type=int_list,
        default=[1],
        metavar="N[,N...]",
        help="consumer processes of the mode in one consumer group, one run per value",
    )


def add_consumer_options(parser: argparse.ArgumentParser) -> None:
    """The consumer settings (ParallelConsumer options)."""
    engine = parser.add_argument_group("consumer settings")
    engine.add_argument(
        "--kafka-config",
        metavar="KEY=VALUE",
        type=kafka_setting,
        action="append",
        default=[],
        help="extra librdkafka consumer setting, passed through (repeatable)",
    )
    engine.add_argument(
        "--metrics-port",
        type=positive_int,
        default=None,
        help="serve the consumers' Prometheus metrics at http://127.0.0.1:PORT/metrics",
    )
    engine.add_argument(
        "--ordering",
        choices=ORDERINGS,
        default="key",
        help="ordering guarantee of the parallel modes",
    )
    engine.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=None,
        help="records in flight at once (default: the library's, 1000, in batch mode at "
        "least 4 x --batch-size)",
    )
    engine.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        help="async mode: concurrent handler calls (default: 2 x cores "
        "for the cpu workload, else the library default)",
    )
    engine.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="process mode: worker processes (default: library default, cores)",
    )
    engine.add_argument(
        "--worker-concurrency",
        type=positive_int,
        default=None,
        help="process mode: records in flight per worker (default: 2 for the cpu workload, "
        "else the library default, 16)",
    )
    engine.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="every mode: batch mode, one handler call per list of up to N records (the "
        "library's batch_size); default: one call per record",
    )


def add_outputs_options(parser: argparse.ArgumentParser) -> None:
    """Consume, transform, produce: each record's handler also produces one output record."""
    outputs = parser.add_argument_group("outputs (consume, transform, produce)")
    outputs.add_argument(
        "--outputs",
        action="store_true",
        help="each record's handler also returns one output record, written by the library "
        "(outputs=True, at least once) to the run's output topic <topic>-out, which is read "
        "back after the run and checked (missing, duplicates, order per key)",
    )
    outputs.add_argument(
        "--exactly-once",
        action="store_true",
        help="--outputs with the library's transactional producer (transactional_id "
        "<group>-tx, one per run and member): each commit interval is one transaction",
    )
    outputs.add_argument(
        "--commit-interval",
        dest="commit_interval_s",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="the consumer's commit_interval_s (with --exactly-once: one transaction each); "
        "default: the library's",
    )


def add_profiling_options(parser: argparse.ArgumentParser) -> None:
    """The profiling options (yappi)."""
    profile = parser.add_argument_group("profiling (yappi)")
    profile.add_argument(
        "--profile",
        action="store_true",
        help="profile each mode's main process into <profile-dir>/"
        "pyrallel-<mode>.prof (pstat format)",
    )
    profile.add_argument(
        "--profile-dir", type=Path, default=DEFAULT_PROFILE_DIR, help="directory of the .prof files"
    )
    profile.add_argument(
        "--profile-clock", choices=PROFILE_CLOCKS, default="wall", help="yappi clock"
    )
    profile.add_argument(
        "--profile-top-n",
        type=non_negative_int,
        default=20,
        help="print the top-N functions by total time (0 to skip)",
    )
    profile.add_argument(
        "--profile-threads", action="store_true", help="profile every thread, not only the main one"
    )
    profile.add_argument(
        "--profile-greenlets",
        action="store_true",
        help="coroutine-aware profiling: account time per asyncio task "
        "(yappi greenlet context backend when gevent greenlets exist)",
    )
    profile.add_argument(
        "--profile-process-workers",
        action="store_true",
        help="process mode: also profile each worker process into "
        "pyrallel-process-worker-<pid>.prof (may be unstable on some "
        "platforms)",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """How the results are shown on the console (the results file always has everything)."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "--wide",
        action="store_true",
        help="print the results as one table with every column (default: tables that fit "
        "100 columns)",
    )
