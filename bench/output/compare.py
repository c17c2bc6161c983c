"""`python -m bench compare A.json B.json`: two results files side by side, with B/A ratios.

Rows are matched by (run, workload), the run being the mode plus its open-loop rate and members
(`async @5000/s x2`), so files from different machines or commits compare as long as they ran
the same modes. Only the rows both files have are shown; a line under the table names the runs
left out because one file lacks them (an all-modes file against a one-mode file, say). The
metadata lines that differ (commit, CPU, broker, ...) are printed first: a ratio means little
without knowing what changed. Each row says whether both results are complete
measurements; a warning is printed when an incomplete or profiled result is compared.

By default every line fits bench.output.table.WIDTH columns: one line per figure under each
run, metadata values shortened; `--wide` gives one row per run and the values whole. Exit
status 1 when the files share no run and workload.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.arg_parser import BenchArgumentParser
from bench.interpreter import describe_interpreter
from bench.output.results import load_results
from bench.output.table import WIDTH, fmt_number, render, run_label

METRICS: tuple[tuple[str, str], ...] = (
    ("throughput_tps", "TPS"),
    ("efficiency", "Eff"),
    ("avg_processing_ms", "Avg ms"),
    ("p99_processing_ms", "P99 ms"),
    ("join_time_sec", "Join s"),
)
# Added when either file ran with --outputs: the output topic's figures (`outputs.<name>`).
OUTPUT_METRICS: tuple[tuple[str, str], ...] = (
    ("outputs.e2e_p50_ms", "Out e2e p50"),
    ("outputs.e2e_p99_ms", "Out e2e p99"),
    ("outputs.missing", "Out miss"),
    ("outputs.duplicates", "Out dup"),
)
NOTHING_SHARED = "no run and workload is in both files"
# Columns of a metadata value in the default view: the longest option name (27) and two
# values fit WIDTH.
DIFF_CELL = 32
METADATA_KEYS = (
    "git_commit",
    "cpu_model",
    "cores",
    "python",  # with its build and GIL (bench.interpreter.describe_interpreter)
    "librdkafka",
    "codec",
    "structures",
    "cpu_kernel",
    "json_library",
    "os",
    "output_mode",  # none | at_least_once | exactly_once (--outputs, --exactly-once)
)


def ratio(a: Any, b: Any) -> float:
    """b / a; NaN when either is missing or a is zero."""
    if not isinstance(a, int | float) or not isinstance(b, int | float) or isinstance(a, bool):
        return math.nan
    if a == 0 or not math.isfinite(a) or not math.isfinite(b):
        return math.nan
    return b / a


def figure(result: dict[str, Any], field: str) -> Any:
    """A result's value of `field`, or of `object.name` inside one of its objects."""
    name, _, inner = field.partition(".")
    value = result.get(name)
    if not inner:
        return value
    return value.get(inner) if isinstance(value, dict) else None


def metrics(a: dict[str, Any], b: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The figures compared: METRICS, and OUTPUT_METRICS when either file has outputs."""
    with_outputs = any(r.get("outputs") for doc in (a, b) for r in doc["results"])
    return METRICS + OUTPUT_METRICS if with_outputs else METRICS


def _index(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(run_label(r), r.get("workload", "?")): r for r in doc["results"]}


def _state(result: dict[str, Any], meta: dict[str, Any]) -> str:
    """complete | incomplete | profiled | - (absent)."""
    if not result:
        return "-"
    if result.get("complete") is not True:
        return "incomplete"
    if result.get("profile_files") or (meta.get("options") or {}).get("profile"):
        return "profiled"
    return "complete"


def warnings(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """One line per compared row (present in both files) whose A or B is not a clean run."""
    index_a, index_b = _index(a), _index(b)
    out = []
    for key in index_a:
        if key not in index_b:
            continue
        states = (_state(index_a[key], a["metadata"]), _state(index_b[key], b["metadata"]))
        bad = [
            f"{side} is {state}"
            for side, state in zip("AB", states, strict=True)
            if state != "complete"
        ]
        if bad:
            out.append(
                f"warning: {key[0]} / {key[1]}: {' and '.join(bad)}; its ratios are not a "
                "like-for-like comparison"
            )
    return out


def _broker(meta: dict[str, Any]) -> str:
    broker = meta.get("broker") or {}
    return f"{broker.get('kind', '?')} {broker.get('version', '')}".strip()


def _metadata_value(meta: dict[str, Any], key: str) -> str:
    if key == "python":
        return describe_interpreter(meta)
    return str(meta.get(key))


def _short(key: str, value: str) -> str:
    """A metadata value within DIFF_CELL columns: a commit as its first 12 hex digits (and
    `-dirty`), anything else cut with `...`."""
    if key == "git_commit" and len(value) >= 40:
        return value[:12] + value[40:]
    return value if len(value) <= DIFF_CELL else value[: DIFF_CELL - 3] + "..."


def metadata_diff(
    a: dict[str, Any], b: dict[str, Any], wide: bool = True
) -> list[tuple[str, str, str]]:
    """(what, A, B) for every metadata line and option that differs; values shortened to fit
    WIDTH unless `wide`."""
    rows = [
        (key, value_a, value_b)
        for key in METADATA_KEYS
        if (value_a := _metadata_value(a, key)) != (value_b := _metadata_value(b, key))
    ]
    if _broker(a) != _broker(b):
        rows.append(("broker", _broker(a), _broker(b)))
    options_a, options_b = a.get("options") or {}, b.get("options") or {}
    for key in sorted(set(options_a) | set(options_b)):
        if key != "json_output" and options_a.get(key) != options_b.get(key):
            rows.append(
                (f"--{key.replace('_', '-')}", str(options_a.get(key)), str(options_b.get(key)))
            )
    if wide:
        return rows
    return [(key, _short(key, va), _short(key, vb)) for key, va, vb in rows]


def shared_keys(
    a: dict[str, Any], b: dict[str, Any]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(run, workload) keys in both files (A's order), only in A, only in B."""
    index_a, index_b = _index(a), _index(b)
    return (
        [k for k in index_a if k in index_b],
        [k for k in index_a if k not in index_b],
        [k for k in index_b if k not in index_a],
    )


def left_out(only_a: Sequence[tuple[str, str]], only_b: Sequence[tuple[str, str]]) -> list[str]:
    """The lines naming the runs one file lacks, so an empty table is never a mystery."""
    return [
        f"left out, only in {side}: " + ", ".join(f"{run} / {workload}" for run, workload in keys)
        for side, keys in (("A", only_a), ("B", only_b))
        if keys
    ]


def compare_table(a: dict[str, Any], b: dict[str, Any], wide: bool = False) -> str:
    """The (run, workload) pairs present in both files, A, B and B/A per metric: one line per
    metric under its run by default (within WIDTH columns whatever the values), one row per
    run with every metric side by side with `wide`."""
    index_a, index_b = _index(a), _index(b)
    shown = metrics(a, b)
    if wide:
        headers = ["Run", "Workload", "A", "B"]
        for _, label in shown:
            headers += [f"{label} A", f"{label} B", "B/A"]
    else:
        headers = ["Run", "Workload", "Figure", "A", "B", "B/A"]
    rows = []
    for key in shared_keys(a, b)[0]:
        ra, rb = index_a[key], index_b[key]
        states = [_state(ra, a["metadata"]), _state(rb, b["metadata"])]
        figures = [
            [
                fmt_number(figure(ra, field)),
                fmt_number(figure(rb, field)),
                fmt_number(ratio(figure(ra, field), figure(rb, field)), 2),
            ]
            for field, _ in shown
        ]
        if wide:
            rows.append([key[0], key[1], *states, *(cell for f in figures for cell in f)])
            continue
        rows.append([key[0], key[1], "state", *states, ""])
        rows += [["", "", label, *f] for (_, label), f in zip(shown, figures, strict=True)]
    return render(headers, rows, right_align_from=4 if wide else 3)


def compare_docs(
    a: dict[str, Any], b: dict[str, Any], names: tuple[str, str], wide: bool = False
) -> str:
    """The whole comparison: the files, what differs, the table, the rows left out and the
    warnings; every line within WIDTH columns unless `wide` (the file names excepted)."""

    def fill(text: str) -> str:
        return text if wide else textwrap.fill(text, WIDTH, subsequent_indent="  ")

    lines = [f"A: {names[0]}", f"B: {names[1]}"]
    diff = metadata_diff(a["metadata"], b["metadata"], wide)
    if diff:
        lines.append("")
        lines.append(render(["differs", "A", "B"], diff))
    warned = warnings(a, b)
    shared, only_a, only_b = shared_keys(a, b)
    for name, doc in (("A", a), ("B", b)):
        if doc["metadata"].get("complete") is False:
            lines.append(f"{name} is an incomplete invocation (some run did not finish)")
    table = compare_table(a, b, wide) if shared else NOTHING_SHARED
    lines += [
        "",
        table,
        *(fill(line) for line in left_out(only_a, only_b)),
        *(["", *(fill(line) for line in warned)] if warned else []),
        "",
        "B/A > 1: B is higher (better for TPS/Eff, worse for ms and s)."
        + ("" if wide else " --wide: one row per run."),
    ]
    return "\n".join(lines)


def compare_files(path_a: Path, path_b: Path, wide: bool = False) -> str:
    return compare_docs(
        load_results(path_a), load_results(path_b), (str(path_a), str(path_b)), wide
    )


def main(argv: Sequence[str] | None = None) -> int:
    """0: compared; 1: no run and workload is in both files; 2: bad arguments or files."""
    parser = BenchArgumentParser(
        prog="python -m bench compare", description="Compare two benchmark results files."
    )
    parser.add_argument("a", type=Path, help="the reference results file (A)")
    parser.add_argument("b", type=Path, help="the results file compared with it (B)")
    parser.add_argument(
        "--wide",
        action="store_true",
        help=f"one row per run with every figure side by side (default: within {WIDTH} columns)",
    )
    args = parser.parse_args(argv)
    try:
        a, b = load_results(args.a), load_results(args.b)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(compare_docs(a, b, (str(args.a), str(args.b)), args.wide))
    return 0 if shared_keys(a, b)[0] else 1


if __name__ == "__main__":
    sys.exit(main())
