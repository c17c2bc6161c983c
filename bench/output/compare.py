"""`python -m bench compare A.json B.json`: two results files side by side, with B/A ratios.

Rows are matched by (run_type, workload), so files from different machines or commits compare
as long as they ran the same modes. The metadata lines that differ (commit, CPU, broker, ...)
are printed first: a ratio means little without knowing what changed.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.output.results import load_results
from bench.output.table import fmt_number, render

METRICS: tuple[tuple[str, str], ...] = (
    ("throughput_tps", "TPS"),
    ("efficiency", "Eff"),
    ("avg_processing_ms", "Avg ms"),
    ("p99_processing_ms", "P99 ms"),
    ("join_time_sec", "Join s"),
)
METADATA_KEYS = (
    "git_commit",
    "cpu_model",
    "cores",
    "python",
    "librdkafka",
    "codec",
    "cpu_kernel",
    "os",
)


def ratio(a: Any, b: Any) -> float:
    """b / a; NaN when either is missing or a is zero."""
    if not isinstance(a, int | float) or not isinstance(b, int | float) or isinstance(a, bool):
        return math.nan
    if a == 0 or not math.isfinite(a) or not math.isfinite(b):
        return math.nan
    return b / a


def _index(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.get("run_type", "?"), r.get("workload", "?")): r for r in doc["results"]}


def _broker(meta: dict[str, Any]) -> str:
    broker = meta.get("broker") or {}
    return f"{broker.get('kind', '?')} {broker.get('version', '')}".strip()


def metadata_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [
        (key, str(a.get(key)), str(b.get(key))) for key in METADATA_KEYS if a.get(key) != b.get(key)
    ]
    if _broker(a) != _broker(b):
        rows.append(("broker", _broker(a), _broker(b)))
    options_a, options_b = a.get("options") or {}, b.get("options") or {}
    for key in sorted(set(options_a) | set(options_b)):
        if key != "json_output" and options_a.get(key) != options_b.get(key):
            rows.append(
                (f"--{key.replace('_', '-')}", str(options_a.get(key)), str(options_b.get(key)))
            )
    return rows


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> str:
    """One row per (run_type, workload) present in either file; A, B and B/A per metric."""
    index_a, index_b = _index(a), _index(b)
    keys = list(index_a) + [k for k in index_b if k not in index_a]
    headers = ["Run", "Workload"]
    for _, label in METRICS:
        headers += [f"{label} A", f"{label} B", "B/A"]
    rows = []
    for key in keys:
        ra, rb = index_a.get(key, {}), index_b.get(key, {})
        row = [key[0], key[1]]
        for field, _ in METRICS:
            row += [
                fmt_number(ra.get(field)),
                fmt_number(rb.get(field)),
                fmt_number(ratio(ra.get(field), rb.get(field)), 2),
            ]
        rows.append(row)
    return render(headers, rows, right_align_from=2)


def compare_files(path_a: Path, path_b: Path) -> str:
    a, b = load_results(path_a), load_results(path_b)
    lines = [f"A: {path_a}", f"B: {path_b}"]
    diff = metadata_diff(a["metadata"], b["metadata"])
    if diff:
        lines.append("")
        lines.append(render(["differs", "A", "B"], diff))
    lines += [
        "",
        compare_table(a, b),
        "",
        "B/A > 1: B is higher (better for TPS/Eff, worse for ms and s).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench compare", description="Compare two benchmark results files."
    )
    parser.add_argument("a", type=Path, help="the reference results file (A)")
    parser.add_argument("b", type=Path, help="the results file compared with it (B)")
    args = parser.parse_args(argv)
    try:
        print(compare_files(args.a, args.b))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
