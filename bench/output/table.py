"""Plain-text tables for the console (results of a run, and compare's side-by-side view).

By default the results fit a terminal of WIDTH columns: two tables (throughput and checks,
then latency) with the columns that matter and compact numbers; `--wide` gives one table with
every column, as wide as it needs. The latency definitions are printed under either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

WIDTH = 100  # columns the default tables fit, for realistic numbers

LATENCY_NOTE = """\
Latency, ms: Soj (sojourn) = receipt by the consumer -> done: the wait in the backlog behind
earlier records + the handling. Hnd (handler) = hand-over to the engine -> done: the wait in the
engine for a free runner + the handler (+ retries). In a backlog run every record is received at
the start and waits its turn, so a mode that handles one record at a time (baseline) has a
sojourn p99 close to the whole run's length. Up to --max-in-flight records are handed over at
once: the baseline queues them for its one runner (its Hnd is the handler's own time only with
--max-in-flight 1)."""


def fmt_number(value: Any, digits: int = 2) -> str:
    """Thousands separators, fixed decimals; '-' for missing or non-finite values."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else ("yes" if value else "NO")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if math.isfinite(value) else "-"
    return str(value)


def fmt_compact(value: Any) -> str:
    """About three significant digits: 475,445 / 108 / 53.1 / 5.41; else as fmt_number."""
    if isinstance(value, float) and math.isfinite(value):
        size = abs(value)
        return fmt_number(value, 0 if size >= 100 else 1 if size >= 10 else 2)
    return fmt_number(value)


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], right_align_from: int = 0) -> str:
    """Columns padded to their widest cell; numeric columns (index >= right_align_from) are
    right-aligned so digits line up."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i >= right_align_from else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return " | ".join(parts).rstrip()

    out = [line(headers), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
    return "\n".join(out)


Result = dict[str, Any]
# header, how to show one result's cell
Column = tuple[str, Callable[[Result], str]]


def _field(name: str, digits: int | None = None) -> Callable[[Result], str]:
    """The cell of a result field: fixed decimals, or compact (digits None)."""
    if digits is None:
        return lambda r: fmt_compact(r.get(name))
    return lambda r: fmt_number(r.get(name), digits)


def _latency(prefix: str, kind: str, stats: Sequence[str], digits: int | None) -> list[Column]:
    return [(f"{prefix} {stat}", _field(f"{stat}_{kind}_ms", digits)) for stat in stats]


def checks(r: Result) -> str:
    """'ok', or what went wrong: ordering violations, duplicates, missing, failed records, and
    with --outputs the same counters of the output topic (`out-miss`, ...)."""
    outputs = r.get("outputs") or {}
    problems = [
        f"{count} {label}"
        for label, source, name in (
            ("order!", r, "ordering_violations"),
            ("dup", r, "duplicates"),
            ("miss", r, "missing"),
            ("failed", r, "failed"),
            ("out-order!", outputs, "ordering_violations"),
            ("out-dup", outputs, "duplicates"),
            ("out-miss", outputs, "missing"),
        )
        if (count := source.get(name))
    ]
    if not problems and r.get("complete") is False:
        problems.append("incomplete")
    return ", ".join(problems) or "ok"


STATS = ("avg", "p50", "p95", "p99", "max")
WIDE_COLUMNS: tuple[Column, ...] = (
    ("Messages", _field("messages_processed", 0)),
    ("Join s", _field("join_time_sec", 2)),
    ("Time s", _field("total_time_sec", 3)),
    ("TPS", _field("throughput_tps", 2)),
    ("Bound TPS", _field("bound_tps", 1)),
    ("Eff", _field("efficiency", 2)),
    *_latency("Soj", "processing", STATS, 3),
    *_latency("Hnd", "handler", STATS, 3),
    ("Order!", _field("ordering_violations", 0)),
    ("Dup", _field("duplicates", 0)),
    ("Miss", _field("missing", 0)),
    ("OK", _field("complete", 0)),
)
THROUGHPUT_COLUMNS: tuple[Column, ...] = (
    ("Records", _field("messages_processed")),
    ("Time s", _field("total_time_sec")),
    ("TPS", _field("throughput_tps")),
    ("Bound", _field("bound_tps")),
    ("Eff", _field("efficiency", 2)),
    ("Checks", checks),
)
LATENCY_COLUMNS: tuple[Column, ...] = (
    *_latency("Soj", "processing", ("p50", "p99", "max"), None),
    *_latency("Hnd", "handler", ("p50", "p99", "max"), None),
)

# Shown after TPS when some run used --batch-size.
WIDE_BATCH_COLUMNS: tuple[Column, ...] = (
    ("Batch", _field("batch_size", 0)),
    ("Calls/s", _field("calls_tps", 1)),
)
BATCH_COLUMNS: tuple[Column, ...] = (
    ("Batch", _field("batch_size", 0)),
    ("Calls/s", _field("calls_tps")),
)


def run_label(result: Result) -> str:
    """The mode, plus the open-loop rate (`@5000/s`) and the members (`x2`) when used."""
    label = str(result.get("run_type", "?"))
    rate = result.get("rate_tps")
    if isinstance(rate, int | float):
        label += f" @{rate:g}/s"
    members = result.get("members")
    if isinstance(members, int) and members > 1:
        label += f" x{members}"
    return label


def _table(results: Sequence[Result], columns: Sequence[Column]) -> str:
    headers = ["Run", "Workload", *(header for header, _ in columns)]
    rows = [
        [run_label(r), str(r.get("workload", "?")), *(cell(r) for _, cell in columns)]
        for r in results
    ]
    return render(headers, rows, right_align_from=2)


def _with_batch(
    results: Sequence[Result], columns: tuple[Column, ...], batch: tuple[Column, ...]
) -> tuple[Column, ...]:
    """The batch columns after TPS when some run used --batch-size."""
    if not any(r.get("batch_size") for r in results):
        return columns
    at = [header for header, _ in columns].index("TPS") + 1
    return (*columns[:at], *batch, *columns[at:])


def results_table(results: Sequence[Result], wide: bool = False) -> str:
    """The console summary of a benchmark invocation (one row per run), then the latency
    definitions: within WIDTH columns by default, every column with `wide`."""
    if wide:
        table = _table(results, _with_batch(results, WIDE_COLUMNS, WIDE_BATCH_COLUMNS))
        return f"{table}\n\n{LATENCY_NOTE}"
    throughput = _table(results, _with_batch(results, THROUGHPUT_COLUMNS, BATCH_COLUMNS))
    latency = _table(results, LATENCY_COLUMNS)
    return (
        f"Throughput (--wide: every column in one table)\n{throughput}\n\n"
        f"Latency, ms\n{latency}\n\n{LATENCY_NOTE}"
    )
