"""Command-line options of the benchmark runner: parsing and validation, nothing else.

Every option of the user's benchmark document is here with its default; the extras (ordering,
in-flight limits, worker counts, progress, broker kind) have defaults that reproduce the
document's sample settings. Validation happens before anything connects, so a bad value fails
fast with one line naming the option (exit status 2; bench/arg_parser.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from bench import option_groups
from bench.arg_parser import BenchArgumentParser
from bench.argtypes import positive_float, positive_int
from bench.measure.profiling import missing_profiler
from bench.options import MODES, BenchOptions, skip_dest
from bench.output.results import DEFAULT_RESULTS_DIR
from pyrallel_consumer import kafka_settings
from pyrallel_consumer.config import usable_cores
from pyrallel_consumer.window import default_max_in_flight

BROKER_KINDS = ("auto", "kafka", "tansu")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Defaults the document leaves open: its sample settings (2000 messages, 100 keys, 4 partitions)
# so that `python -m bench` with no options reproduces the published numbers in well under a
# minute per mode. The timeout is derived per run from its bound (bench.measure.bounds).
DEFAULT_NUM_MESSAGES = 2000
DEFAULT_NUM_KEYS = 100
DEFAULT_NUM_PARTITIONS = 4
DEFAULT_TOPIC_PREFIX = "pyrallel-benchmark"

# Kafka topic names: at most 249 characters of [a-zA-Z0-9._-]; the bench appends suffixes.
_TOPIC_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_TOPIC_PREFIX_MAX = 200


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows real defaults only: flags, lists and "None = decided at run time" stay unlabelled
    (their help text says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []) or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of `python -m bench` / `python -m bench.run_parallel_benchmark`."""
    parser = BenchArgumentParser(
        prog=prog,
        description=(
            "Throughput/latency benchmark of Pyrallel Consumer: baseline, async and process "
            "modes on the same workload. Subcommands of `python -m bench`: "
            "`compare A.json B.json`, `report FILES... --out DIR`."
        ),
        formatter_class=_HelpFormatter,
    )
    general = parser.add_argument_group("general")
    general.add_argument(
        "--bootstrap-servers",
        default=None,
        help="Kafka cluster to use (host:port[,host:port]); default: start an embedded broker "
        "(Apache Kafka when Java and Maven are available, else tansu)",
    )
    general.add_argument(
        "--broker-kind",
        choices=BROKER_KINDS,
        default="auto",
        help="embedded broker to start when --bootstrap-servers is not given",
    )
    general.add_argument(
        "--num-messages",
        type=positive_int,
        default=DEFAULT_NUM_MESSAGES,
        help="records produced and consumed per run",
    )
    general.add_argument(
        "--num-keys", type=positive_int, default=DEFAULT_NUM_KEYS, help="distinct record keys"
    )
    general.add_argument(
        "--num-partitions",
        type=positive_int,
        default=DEFAULT_NUM_PARTITIONS,
        help="partitions of each topic",
    )
    general.add_argument(
        "--topic-prefix",
        default=DEFAULT_TOPIC_PREFIX,
        help="prefix of topic and consumer group names",
    )
    general.add_argument(
        "--timeout-sec",
        type=positive_float,
        default=None,
        help="limit per run (join + processing); default: derived from the run's bound "
        "(3 x records / bound + producing time + 30 s join allowance), printed per run",
    )
    for mode in MODES:
        general.add_argument(
            f"--skip-{mode}", dest=skip_dest(mode), action="store_true", help=f"do not run {mode}"
        )
    general.add_argument(
        "--skip-reset",
        action="store_true",
        help="keep existing topics and consumer groups (no delete/recreate)",
    )
    general.add_argument(
        "--json-output",
        type=Path,
        default=None,
        help="JSON summary path (default bench/results/<UTC timestamp>.json)",
    )
    general.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="logging level; DEBUG materially reduces throughput",
    )
    general.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (a bar on a terminal; off one, a line every 10 s)",
    )

    option_groups.add_workload_options(parser)
    option_groups.add_scenario_options(parser)
    option_groups.add_consumer_options(parser)
    option_groups.add_outputs_options(parser)
    option_groups.add_profiling_options(parser)
    option_groups.add_output_options(parser)
    return parser


def _validate(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    """Cross-option checks argparse cannot express; each error names the option."""
    if all(getattr(ns, skip_dest(mode)) for mode in MODES):
        flags = ", ".join(f"--skip-{mode}" for mode in MODES)
        parser.error(f"{flags} together leave nothing to run")
    prefix: str = ns.topic_prefix
    if not prefix or len(prefix) > _TOPIC_PREFIX_MAX or not set(prefix) <= _TOPIC_CHARS:
        parser.error(
            f"--topic-prefix: {prefix!r} must be 1-{_TOPIC_PREFIX_MAX} characters "
            "of a-z A-Z 0-9 . _ -"
        )
    if ns.bootstrap_servers is not None:
        servers = [s.strip() for s in ns.bootstrap_servers.split(",")]
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                parser.error(
                    f"--bootstrap-servers: {server!r} is not host:port (e.g. localhost:9092)"
                )
        if ns.broker_kind != "auto":
            parser.error(
                "--broker-kind selects an embedded broker; it cannot be combined "
                "with --bootstrap-servers"
            )
    try:  # before anything is produced: a typo would otherwise fail only in the first run
        kafka_settings.check(dict(ns.kafka_config), "--kafka-config")
    except ValueError as exc:
        parser.error(str(exc))
    if ns.metrics_port is not None and max(ns.members) > 1:
        parser.error(
            "--metrics-port serves the consumers of this process, but with --members above 1 "
            "each member is a process of its own: drop one of the two"
        )
    if ns.json_output is not None and ns.json_output.exists() and ns.json_output.is_dir():
        parser.error(f"--json-output: {ns.json_output} is a directory; give a file path")
    # Checked before the run so that nothing measured is lost to a results location that the
    # writer would only discover at the end (results.write_results still has a fallback).
    unwritable = _unwritable_reason(ns.json_output or DEFAULT_RESULTS_DIR / "results.json")
    if unwritable is not None:
        parser.error(
            f"--json-output: cannot write the results there ({unwritable}); "
            "give a writable path or fix the directory's permissions"
        )
    if ns.profile_dir.exists() and not ns.profile_dir.is_dir():
        parser.error(f"--profile-dir: {ns.profile_dir} exists and is not a directory")
    profiling_extras = [
        name
        for name in ("profile_threads", "profile_greenlets", "profile_process_workers")
        if getattr(ns, name)
    ]
    if profiling_extras and not ns.profile:
        option = "--" + profiling_extras[0].replace("_", "-")
        parser.error(f"{option} needs --profile")
    # Before anything is produced: a missing profiler would otherwise end the first run.
    unavailable = missing_profiler() if ns.profile else None
    if unavailable is not None:
        parser.error(unavailable)
    if ns.max_in_flight is None:  # the library's default, which depends on --batch-size
        ns.max_in_flight = default_max_in_flight(ns.batch_size)
    if ns.batch_size is not None and ns.batch_size > ns.max_in_flight:
        parser.error(
            f"--batch-size: {ns.batch_size} is more than --max-in-flight {ns.max_in_flight}; "
            "a batch is made of records in flight"
        )
    if ns.exactly_once:
        ns.outputs = True  # exactly once is a way of writing outputs
    if ns.outputs and ns.skip_reset:
        parser.error(
            "--outputs checks the run's output topic for missing and duplicate outputs, but "
            "--skip-reset keeps the outputs of earlier runs in it: drop one of the two"
        )
    if ns.workers is not None and ns.workers > 4 * usable_cores() + 64:
        parser.error(
            f"--workers: {ns.workers} is far more processes than this machine's "
            f"{usable_cores()} cores can run"
        )


def _unwritable_reason(path: Path) -> str | None:
    """Why the file `path` could not be created (None when it can). Missing parents count as
    creatable when their nearest existing ancestor is a writable directory."""
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory} is not writable by uid {os.getuid()}"
    return None


def parse_args(
    argv: Sequence[str] | None = None, *, prog: str | None = None, force_profile: bool = False
) -> BenchOptions:
    """Parse and validate; exits with status 2 and a message naming the option on bad input."""
    parser = build_parser(prog)
    ns = parser.parse_args(argv)
    if force_profile:
        ns.profile = True
    _validate(parser, ns)
    ns.kafka_config = tuple(ns.kafka_config)
    ns.rate = tuple(ns.rate or ())
    ns.members = tuple(ns.members)
    fields = vars(ns)
    fields["skipped_modes"] = tuple(mode for mode in MODES if fields.pop(skip_dest(mode)))
    return BenchOptions(**fields)
