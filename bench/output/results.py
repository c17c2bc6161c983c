"""The benchmark's results file: one run's result record, the writer and the reader.

Shape of the file (indented JSON): {"metadata": {...}, "results": [RunResult, ...]}, written
with orjson, or the standard library's json without it (bench.output.jsonlib; the metadata's
`json_library` says which).
Readers (compare, report) only need `results[*].run_type/workload` and the numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.output import jsonlib
from pyrallel_consumer.redact import redact

DEFAULT_RESULTS_DIR = Path("bench") / "results"


@dataclass
class RunResult:
    """One mode (an engine run) on one workload. NaN numbers (no data) are written as null.

    The field names are the public results format: `run_type` is the engine's name
    (pyrallel_consumer.engines.registry), `workload` one of bench.workloads.WORKLOADS.
    """

    run_type: str  # the engine: baseline | async | process
    workload: str  # sleep | cpu | io
    topic: str
    group_id: str
    ordering: str
    messages_expected: int
    messages_processed: int
    total_time_sec: float  # first record received -> last record completed
    throughput_tps: float
    # *_processing_ms: the sojourn, receipt by the consumer -> done (backlog wait + handling)
    avg_processing_ms: float
    p50_processing_ms: float
    p95_processing_ms: float
    p99_processing_ms: float
    max_processing_ms: float
    join_time_sec: float  # run start -> first partition assignment
    wall_time_sec: float  # run start -> run() returned (join + processing + shutdown)
    bound_tps: float
    bound_parallelism: int
    service_time_ms: float  # one record's; in batch mode one call of a full batch
    efficiency: float
    ordering_violations: int
    duplicates: int
    missing: int
    failed: int  # completions with ok=False
    complete: bool
    interrupted: bool = False  # run() returned early without an error: stop()/SIGINT
    timeout_sec: float | None = None  # the run's limit (given, or derived from the bound)
    key_distribution: str = "uniform"  # --key-distribution
    hottest_key_share: float | None = None  # busiest key's fraction of the records
    hottest_partition_share: float | None = None  # busiest partition's fraction
    members: int = 1  # consumer processes in the group (--members)
    rate_tps: float | None = None  # open loop: the offered rate asked for (--rate); None: closed
    batch_size: int | None = None  # --batch-size: records per handler call at most
    calls_tps: float = math.nan  # handler calls per second, in batch mode
    # *_handler_ms: the handling, hand-over to the engine -> done (no backlog wait)
    avg_handler_ms: float = math.nan
    p50_handler_ms: float = math.nan
    p95_handler_ms: float = math.nan
    p99_handler_ms: float = math.nan
    max_handler_ms: float = math.nan
    # The scenario figures, each null when its option was not used (README, "What is measured").
    stuck_key: dict[str, Any] | None = None
    open_loop: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    # --outputs: the output mode, the output topic's counters and end-to-end latency
    # (bench/run/outputs.py output_figures); null without outputs.
    outputs: dict[str, Any] | None = None
    profile_files: list[str] = dataclasses.field(default_factory=list)
    engine_stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def jsonable(value: Any) -> Any:
    """A copy of `value` that JSON (and pickle) can carry: stats() may hold anything, so what
    is not a plain value is kept as its repr."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def default_output_path(now: dt.datetime | None = None) -> Path:
    """bench/results/<UTC timestamp>.json (relative to the working directory)."""
    now = now or dt.datetime.now(dt.UTC)
    return DEFAULT_RESULTS_DIR / f"{now.strftime('%Y%m%dT%H%M%SZ')}.json"


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: written as null. Keys become strings (JSON's only kind of key).
    Secret-bearing entries (a password, a key) are redacted wherever they appear."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in redact(value).items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def build_document(metadata: dict[str, Any], results: list[RunResult]) -> dict[str, Any]:
    return {"metadata": _clean(metadata), "results": [_clean(r.to_dict()) for r in results]}


def write_results(path: Path, metadata: dict[str, Any], results: list[RunResult]) -> Path:
    """Write the results file (creating its directory); returns the path written.

    Measured results are never lost to an unwritable location: when `path` cannot be written
    (OSError), they go to fallback_path(path) instead, with a warning on stderr naming both."""
    data = jsonlib.dumps_indented(build_document(metadata, results))
    try:
        return _write_atomically(path, data + b"\n")
    except OSError as exc:
        fallback = fallback_path(path)
        if fallback == path:
            raise
        _write_atomically(fallback, data + b"\n")
        print(
            f"warning: could not write the results to {path} ({exc}); wrote them to {fallback}",
            file=sys.stderr,
            flush=True,
        )
        return fallback


def fallback_path(path: Path) -> Path:
    """Where results go when their own path is unwritable: <temp dir>/pyrallel-results/<name>."""
    return Path(tempfile.gettempdir()) / "pyrallel-results" / path.name


def _write_atomically(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half a file
    return path


def load_results(path: Path) -> dict[str, Any]:
    """Read a results file, checking the top-level shape so callers get a clear error."""
    try:
        doc = jsonlib.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:  # orjson's error is a subclass
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError(f"{path}: not a benchmark results file (no 'results' list)")
    doc.setdefault("metadata", {})
    return doc
