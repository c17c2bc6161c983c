"""Plain-text tables for the console (results of a run, and compare's side-by-side view)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fmt_number(value: Any, digits: int = 2) -> str:
    """Thousands separators, fixed decimals; '-' for missing or non-finite values."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else ("yes" if value else "NO")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if math.isfinite(value) else "-"
    return str(value)


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


RESULT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    # header, result field, decimals
    ("Messages", "messages_processed", 0),
    ("Join s", "join_time_sec", 2),
    ("Time s", "total_time_sec", 3),
    ("TPS", "throughput_tps", 2),
    ("Bound TPS", "bound_tps", 1),
    ("Eff", "efficiency", 2),
    ("Avg ms", "avg_processing_ms", 3),
    ("P50 ms", "p50_processing_ms", 3),
    ("P95 ms", "p95_processing_ms", 3),
    ("P99 ms", "p99_processing_ms", 3),
    ("Max ms", "max_processing_ms", 3),
    ("Order!", "ordering_violations", 0),
    ("Dup", "duplicates", 0),
    ("Miss", "missing", 0),
    ("OK", "complete", 0),
)


# Shown after TPS when some run used --batch-size.
BATCH_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Batch", "batch_size", 0),
    ("Calls/s", "calls_tps", 1),
)


def run_label(result: dict[str, Any]) -> str:
    """The mode, plus the open-loop rate (`@5000/s`) and the members (`x2`) when used."""
    label = str(result.get("run_type", "?"))
    rate = result.get("rate_tps")
    if isinstance(rate, int | float):
        label += f" @{rate:g}/s"
    members = result.get("members")
    if isinstance(members, int) and members > 1:
        label += f" x{members}"
    return label


def results_table(results: Sequence[dict[str, Any]]) -> str:
    """The console summary of a benchmark invocation (one row per run)."""
    columns = RESULT_COLUMNS
    if any(r.get("batch_size") for r in results):
        at = [c[1] for c in columns].index("throughput_tps") + 1
        columns = (*columns[:at], *BATCH_COLUMNS, *columns[at:])
    headers = ["Run", "Workload", *(c[0] for c in columns)]
    rows = [
        [
            run_label(r),
            r.get("workload", "?"),
            *(fmt_number(r.get(name), digits) for _, name, digits in columns),
        ]
        for r in results
    ]
    return render(headers, rows, right_align_from=2)
