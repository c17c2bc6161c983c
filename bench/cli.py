"""Command-line options of the benchmark runner: parsing and validation, nothing else.

Every option of the user's benchmark document is here with its default; the extras (ordering,
in-flight limits, worker counts, progress, broker kind) have defaults that reproduce the
document's sample settings. Validation happens before anything connects, so a bad value fails
fast with a message naming the option (argparse exits with status 2).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.output.results import DEFAULT_RESULTS_DIR
from bench.workloads import WORKLOAD_NAMES, WORKLOADS
from pyrallel_consumer import kafka_settings
from pyrallel_consumer.config import usable_cores
from pyrallel_consumer.engines.registry import ENGINE_NAMES
from pyrallel_consumer.redact import redact

# A mode is a run of one engine: the modes are the library's engines, in registry order.
MODES = ENGINE_NAMES
WORKLOAD_CHOICES = (*WORKLOAD_NAMES, "all")
ORDERINGS = ("key", "partition", "unordered")
BROKER_KINDS = ("auto", "kafka", "tansu")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PROFILE_CLOCKS = ("wall", "cpu")

# Defaults the document leaves open: its sample settings (2000 messages, 100 keys, 4 partitions)
# so that `python -m bench` with no options reproduces the published numbers in well under a
# minute per mode; the timeout leaves room for the slowest run (baseline sleep: 2000 x 5 ms).
DEFAULT_NUM_MESSAGES = 2000
DEFAULT_NUM_KEYS = 100
DEFAULT_NUM_PARTITIONS = 4
DEFAULT_TIMEOUT_SEC = 120.0
DEFAULT_TOPIC_PREFIX = "pyrallel-benchmark"
DEFAULT_PROFILE_DIR = DEFAULT_RESULTS_DIR / "profiles"
DEFAULT_MAX_IN_FLIGHT = 1000

# Kafka topic names: at most 249 characters of [a-zA-Z0-9._-]; the bench appends suffixes.
_TOPIC_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_TOPIC_PREFIX_MAX = 200


@dataclass(frozen=True)
class BenchOptions:
    """The validated options of one benchmark invocation (recorded verbatim in the results)."""

    bootstrap_servers: str | None
    broker_kind: str
    num_messages: int
    num_keys: int
    num_partitions: int
    topic_prefix: str
    timeout_sec: float
    skipped_modes: tuple[str, ...]  # from the --skip-<mode> flags
    skip_reset: bool
    workload: str
    worker_sleep_ms: float
    worker_cpu_iterations: int
    worker_io_sleep_ms: float
    ordering: str
    max_in_flight: int
    concurrency: int | None
    workers: int | None
    worker_concurrency: int | None
    kafka_config: tuple[tuple[str, str], ...]
    metrics_port: int | None
    json_output: Path | None
    log_level: str
    no_progress: bool
    profile: bool
    profile_dir: Path
    profile_clock: str
    profile_top_n: int
    profile_threads: bool
    profile_greenlets: bool
    profile_process_workers: bool

    @property
    def modes(self) -> list[str]:
        """The modes (engine names) to run, in registry order (baseline, async, process)."""
        return [mode for mode in MODES if mode not in self.skipped_modes]

    @property
    def workloads(self) -> list[str]:
        """`all` expands to every workload in registry order (sleep -> cpu -> io)."""
        return list(WORKLOAD_NAMES) if self.workload == "all" else [self.workload]

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly copy (paths as strings) for the results metadata; the skipped modes
        appear as one `skip_<mode>` flag each, as the command line spells them."""
        data: dict[str, object] = {}
        for key, value in asdict(self).items():
            if key == "skipped_modes":
                data.update({_skip_dest(mode): mode in self.skipped_modes for mode in MODES})
            elif key == "kafka_config":  # results files travel: no passwords in them
                data[key] = [list(pair) for pair in redact(dict(self.kafka_config)).items()]
            else:
                data[key] = str(value) if isinstance(value, Path) else value
        return data


def _skip_dest(mode: str) -> str:
    return f"skip_{mode}"


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _kafka_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (e.g. fetch.wait.max.ms=10), got {text!r}"
        )
    return key.strip(), value.strip()


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows real defaults only: flags, lists and "None = decided at run time" stay unlabelled
    (their help text says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []) or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of `python -m bench` / `python -m bench.run_parallel_benchmark`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Throughput/latency benchmark of Pyrallel Consumer: baseline, async and process "
            "modes on the same workload. Subcommands of `python -m bench`: "
            "`compare A.json B.json`, `report FILES... --out DIR`."
        ),
        formatter_class=_HelpFormatter,
        # Whole option names only: wrappers (the images' entrypoint) look for the options the
        # caller gave, and an abbreviation they do not recognise would be overridden silently.
        allow_abbrev=False,
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
        type=_positive_int,
        default=DEFAULT_NUM_MESSAGES,
        help="records produced and consumed per run",
    )
    general.add_argument(
        "--num-keys", type=_positive_int, default=DEFAULT_NUM_KEYS, help="distinct record keys"
    )
    general.add_argument(
        "--num-partitions",
        type=_positive_int,
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
        type=_positive_float,
        default=DEFAULT_TIMEOUT_SEC,
        help="limit per run (join + processing); also the broker connect limit",
    )
    for mode in MODES:
        general.add_argument(
            f"--skip-{mode}", dest=_skip_dest(mode), action="store_true", help=f"do not run {mode}"
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
        help="no progress bar (it is also off when stderr is not a TTY)",
    )

    workload = parser.add_argument_group("workload (applies to every mode)")
    workload.add_argument(
        "--workload",
        choices=WORKLOAD_CHOICES,
        default="sleep",
        help="per-record work ("
        + "; ".join(f"{name}: {w.summary}" for name, w in WORKLOADS.items())
        + f"); 'all' runs {', '.join(WORKLOAD_NAMES)} in turn with suffixed topic/group names",
    )
    workload.add_argument(
        "--worker-sleep-ms",
        type=_non_negative_float,
        default=5.0,
        help="per-record sleep of the sleep workload",
    )
    workload.add_argument(
        "--worker-cpu-iterations",
        type=_positive_int,
        default=1000,
        help="SHA-256 chain iterations of the cpu workload",
    )
    workload.add_argument(
        "--worker-io-sleep-ms",
        type=_non_negative_float,
        default=5.0,
        help="delay of the loopback server answering the io workload",
    )

    engine = parser.add_argument_group("consumer settings")
    engine.add_argument(
        "--kafka-config",
        metavar="KEY=VALUE",
        type=_kafka_setting,
        action="append",
        default=[],
        help="extra librdkafka consumer setting, passed through (repeatable)",
    )
    engine.add_argument(
        "--metrics-port",
        type=_positive_int,
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
        type=_positive_int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="records in flight at once (async and process modes)",
    )
    engine.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        help="async mode: concurrent handler calls (default: 2 x cores "
        "for the cpu workload, else the library default)",
    )
    engine.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="process mode: worker processes (default: library default, cores)",
    )
    engine.add_argument(
        "--worker-concurrency",
        type=_positive_int,
        default=None,
        help="process mode: records in flight per worker (default: 2 for the cpu workload, "
        "else the library default, 16)",
    )

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
        type=_non_negative_int,
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
    return parser


def _validate(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    """Cross-option checks argparse cannot express; each error names the option."""
    if all(getattr(ns, _skip_dest(mode)) for mode in MODES):
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
    fields = vars(ns)
    fields["skipped_modes"] = tuple(mode for mode in MODES if fields.pop(_skip_dest(mode)))
    return BenchOptions(**fields)
