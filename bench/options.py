"""The validated options of one benchmark invocation (bench/cli.py parses them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from bench.workloads import ALL_WORKLOADS
from pyrallel_consumer.engines.registry import ENGINE_NAMES
from pyrallel_consumer.redact import redact

# A mode is a run of one engine: the modes are the library's engines, in registry order.
MODES = ENGINE_NAMES


def skip_dest(mode: str) -> str:
    """The options' attribute of --skip-<mode>."""
    return f"skip_{mode}"


@dataclass(frozen=True)
class BenchOptions:
    """The validated options of one benchmark invocation (recorded verbatim in the results)."""

    bootstrap_servers: str | None
    broker_kind: str
    num_messages: int
    num_keys: int
    num_partitions: int
    topic_prefix: str
    timeout_sec: float | None  # None: derived per run from its bound
    skipped_modes: tuple[str, ...]  # from the --skip-<mode> flags
    skip_reset: bool
    workload: str
    worker_sleep_ms: float
    worker_cpu_iterations: int
    worker_io_sleep_ms: float
    worker_bulk_fixed_ms: float
    worker_bulk_per_record_ms: float
    cpu_service_ms: float | None  # cpu workload's time per record; None: measured at start
    worker_pycpu_iterations: int
    pycpu_service_ms: float | None  # pycpu workload's time per record; None: measured at start
    key_distribution: str  # uniform | zipf:S | hot:F (bench.workloads.keys)
    stuck_key_ms: float  # 0: no stuck record
    rate: tuple[float, ...]  # offered records/s of open-loop runs; empty: closed loop
    warmup_s: float  # open loop: seconds produced at the rate first, left out of the figures
    floor: bool  # open loop: also measure a plain consume loop at the same rate
    members: tuple[int, ...]  # consumer processes in the group, one run per value
    ordering: str
    max_in_flight: int
    concurrency: int | None
    workers: int | None
    worker_concurrency: int | None
    batch_size: int | None  # batch mode: records per handler call at most; None: one
    outputs: bool  # --outputs (also set by --exactly-once): one output record per record
    exactly_once: bool  # --exactly-once: the transactional producer
    commit_interval_s: float | None  # the consumer's commit_interval_s; None: the library's
    kafka_config: tuple[tuple[str, str], ...]
    metrics_port: int | None  # serve Prometheus metrics of the (single-member) runs
    json_output: Path | None
    log_level: str
    no_progress: bool
    wide: bool  # --wide: one results table with every column
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
    def rates(self) -> list[float | None]:
        """One run per offered rate; None is the closed-loop (backlog) run."""
        return list(self.rate) if self.rate else [None]

    @property
    def workloads(self) -> list[str]:
        """`all` expands to the document's workloads in order (sleep -> cpu -> io)."""
        return list(ALL_WORKLOADS) if self.workload == "all" else [self.workload]

    @property
    def output_mode(self) -> str:
        """What --outputs / --exactly-once select, recorded in the results: `none`,
        `at_least_once` (--outputs) or `exactly_once`."""
        if self.exactly_once:
            return "exactly_once"
        return "at_least_once" if self.outputs else "none"

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly copy (paths as strings) for the results metadata; the skipped modes
        appear as one `skip_<mode>` flag each, as the command line spells them."""
        data: dict[str, object] = {}
        for key, value in asdict(self).items():
            if key == "skipped_modes":
                data.update({skip_dest(mode): mode in self.skipped_modes for mode in MODES})
            elif key == "kafka_config":  # results files travel: no passwords in them
                data[key] = [list(pair) for pair in redact(dict(self.kafka_config)).items()]
            else:
                data[key] = str(value) if isinstance(value, Path) else value
        return data
