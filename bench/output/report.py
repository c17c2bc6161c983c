"""`python -m bench report FILES... --out DIR`: PNG charts and a markdown summary.

Writes DIR/throughput.png and DIR/p99_latency.png (grouped bars: one group per workload, one bar
per run and source), DIR/latency_vs_rate.png when open-loop runs are present (end-to-end p99
against the offered rate, one curve per mode and source) and DIR/summary.md (a table per file,
the scenario tables, links to the charts). A source is a file, or the files of one container
run (they share a run id), or the files given the same --label: its series share a hatch (bars)
or line style (curves), while a mode has one colour in every source.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.arg_parser import BenchArgumentParser
from bench.interpreter import describe_interpreter
from bench.output.charts import Series, draw_bars, draw_curves, save
from bench.output.results import load_results
from bench.output.scenario_tables import scenario_sections
from bench.output.table import fmt_number, run_label
from bench.workloads import WORKLOAD_NAMES
from pyrallel_consumer.engines.registry import ENGINE_NAMES

BAR_CHARTS: tuple[tuple[str, str, str], ...] = (
    # file name, result field, y label
    ("throughput.png", "throughput_tps", "throughput (records/s)"),
    ("p99_latency.png", "p99_processing_ms", "p99 processing time (ms)"),
)
CURVE_CHART = "latency_vs_rate.png"
# Groups and series in registry order; names no registry knows (an older or newer bench) last.
MODE_ORDER = ENGINE_NAMES
WORKLOAD_ORDER = WORKLOAD_NAMES

Doc = dict[str, Any]


def source_labels(docs: Sequence[tuple[Path, Doc]], given: Sequence[str] = ()) -> list[str]:
    """The source each file's series are labelled with: the `--label` given for it, else its
    file name without .json. Files that share a run id (one container run writes
    <run id>-<mode>.json per mode) share one label, the common start of their names, and so
    one hatch; different files that would read the same are numbered."""
    if given:
        return list(given)
    stems = [path.stem for path, _ in docs]
    runs: dict[str, list[int]] = {}
    for i, (_, doc) in enumerate(docs):
        run_id = (doc.get("metadata") or {}).get("run_id")
        if run_id:
            runs.setdefault(str(run_id), []).append(i)
    labels = list(stems)
    for members in runs.values():
        if len(members) > 1:
            # The names' common start character by character ("<run id>-"), not a path.
            names = [stems[i] for i in members]
            common = _common_start(names).rstrip("-_. ")
            for i in members:
                labels[i] = common or stems[members[0]]
    run_of = {i: run_id for run_id, members in runs.items() for i in members}
    distinct = {(label, run_of.get(i, f"file {i}")) for i, label in enumerate(labels)}
    if len({label for label, _ in distinct}) < len(distinct):
        labels = [f"{i + 1}: {label}" for i, label in enumerate(labels)]
    return labels


def is_marked(result: dict[str, Any], meta: dict[str, Any]) -> bool:
    """Incomplete or profiled: its numbers must not be read as a clean measurement."""
    profiled = bool(result.get("profile_files")) or bool((meta.get("options") or {}).get("profile"))
    return result.get("complete") is not True or profiled


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else math.nan


def _source_suffix(labels: Sequence[str], source: str) -> str:
    return f" ({source})" if len(set(labels)) > 1 else ""


def _bar_series(
    docs: Sequence[tuple[Path, Doc]], labels: list[str], field: str
) -> tuple[list[str], list[Series]]:
    """One series per run (mode, rate, members) and source; its key is the run (the colour),
    its source the label (the hatch)."""
    workloads = sorted(
        {str(r.get("workload", "?")) for _, doc in docs for r in doc["results"]},
        key=lambda w: (WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else 99, w),
    )
    mode_rank = {m: i for i, m in enumerate(MODE_ORDER)}
    sources = list(dict.fromkeys(labels))
    runs: dict[tuple[str, str], Series] = {}
    rank: dict[tuple[str, str], int] = {}  # series in registry order of their mode
    for (_, doc), source in zip(docs, labels, strict=True):
        for r in doc["results"]:
            key = run_label(r)
            one = runs.setdefault(
                (source, key),
                Series(
                    key + _source_suffix(labels, source),
                    [math.nan] * len(workloads),
                    [False] * len(workloads),
                    key=key,
                    source=source,
                ),
            )
            x = workloads.index(str(r.get("workload", "?")))
            one.values[x] = _number(r.get(field))
            one.marked[x] = is_marked(r, doc["metadata"])
            rank.setdefault((source, key), mode_rank.get(r.get("run_type"), 99))
    ordered = sorted(runs, key=lambda k: (sources.index(k[0]), rank[k], k[1]))
    series = [runs[k] for k in ordered]
    return workloads, [s for s in series if any(math.isfinite(v) for v in s.values)]


def _curve_series(
    docs: Sequence[tuple[Path, Doc]], labels: list[str]
) -> tuple[list[list[float]], list[Series]]:
    """End-to-end p99 against the offered rate asked (--rate), per (source, mode, workload,
    members)."""
    xs: dict[tuple[str, str], list[float]] = {}
    curves: dict[tuple[str, str], Series] = {}
    for (_, doc), source in zip(docs, labels, strict=True):
        for r in doc["results"]:
            loop = r.get("open_loop")
            if not isinstance(loop, dict):
                continue
            members = r.get("members") or 1
            key = f"{r.get('run_type')}/{r.get('workload')}" + (
                f" x{members}" if members > 1 else ""
            )
            name = key + _source_suffix(labels, source)
            one = curves.setdefault((source, key), Series(name, [], [], key=key, source=source))
            # The rate asked for (--rate), not the measured one (1999.5, 2000.6): points of one
            # rate line up, and the axis reads in the values the user chose.
            asked = _number(loop.get("target_tps", r.get("rate_tps")))
            xs.setdefault((source, key), []).append(
                asked if math.isfinite(asked) else _number(loop.get("offered_tps"))
            )
            one.values.append(_number(loop.get("e2e_p99_ms")))
            one.marked.append(is_marked(r, doc["metadata"]))
    return [xs[name] for name in curves], list(curves.values())


def _settings(meta: dict[str, Any]) -> str:
    options = meta.get("options") or {}
    broker = meta.get("broker") or {}
    parts = [
        f"{options.get('num_messages', '?')} messages, {options.get('num_keys', '?')} keys "
        f"({options.get('key_distribution', 'uniform')}), "
        f"{options.get('num_partitions', '?')} partitions, ordering {options.get('ordering', '?')}",
        f"outputs {meta.get('output_mode', 'none')}",
        f"broker {broker.get('kind', '?')} {broker.get('version', '')}".rstrip(),
        f"{meta.get('cores', '?')} cores ({meta.get('cpu_model', '?')})",
        f"host {meta.get('host', '?')}",
        describe_interpreter(meta),
        f"codec {meta.get('codec', '?')}, structures {meta.get('structures', '?')}, "
        f"cpu kernel {meta.get('cpu_kernel', '?')}, JSON {meta.get('json_library', '?')}",
    ]
    if meta.get("git_commit"):
        parts.append(f"commit {meta['git_commit']}")
    if meta.get("utc_time"):
        parts.append(str(meta["utc_time"]))
    if meta.get("complete") is False:
        parts.append("**incomplete**")
    return "; ".join(parts)


def _row(r: dict[str, Any], meta: dict[str, Any]) -> str:
    label = run_label(r) + (" *" if is_marked(r, meta) else "")
    if not math.isfinite(_number(r.get("throughput_tps"))):
        return f"| {label} | {r.get('workload')} | not measured: {r.get('error') or 'no data'} |"
    return (
        f"| {label} | {r.get('workload')} | {fmt_number(r.get('messages_processed'))} | "
        f"{fmt_number(r.get('throughput_tps'))} | {fmt_number(r.get('bound_tps'), 1)} | "
        f"{fmt_number(r.get('efficiency'))} | {fmt_number(r.get('avg_processing_ms'))} | "
        f"{fmt_number(r.get('p99_processing_ms'))} | {fmt_number(r.get('join_time_sec'))} | "
        f"{fmt_number(r.get('complete'))} |"
    )


def markdown_summary(docs: list[tuple[Path, Doc]], labels: list[str], charts: list[str]) -> str:
    lines = ["# Benchmark report", ""]
    for (path, doc), source in zip(docs, labels, strict=True):
        meta = doc["metadata"]
        lines += [f"## {path.name} ({source})", "", _settings(meta), ""]
        lines += [
            "| run | workload | records | TPS | bound TPS | efficiency | avg ms | p99 ms "
            "| join s | complete |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        lines += [_row(r, meta) for r in doc["results"]]
        lines.append("")
        for title, body in scenario_sections(doc["results"]):
            lines += [f"**{title}**", "", "```", body, "```", ""]
    lines += ["## Charts", ""]
    lines += [f"![{name}]({name})" for name in charts]
    lines += [
        "",
        "`*`: incomplete or profiled run (not a clean measurement). TPS counts records per "
        "second from the first record received to the last completed (open loop: from the "
        "first measured record completed, against a bound of min(rate, bound)); latency is each "
        "record's time from receipt to completion (queueing plus execution), so more in-flight "
        "work raises both TPS and latency. End-to-end latency (open loop) runs from the "
        "record's timestamp to its completion.",
        "",
    ]
    return "\n".join(lines)


def _sources(labels: Sequence[str]) -> str:
    """` (3 sources)` when a chart's series come from more than one source."""
    count = len(set(labels))
    return f" ({count} sources)" if count > 1 else ""


def figures(docs: Sequence[tuple[Path, Doc]], labels: list[str]) -> list[tuple[str, Any]]:
    """The charts as (file name, matplotlib Figure): the bar charts, and the latency curve when
    open-loop runs are present."""
    drawn = []
    for name, field, ylabel in BAR_CHARTS:
        groups, series = _bar_series(docs, labels, field)
        title = ylabel.split(" (")[0] + " per run and workload" + _sources(labels)
        drawn.append((name, draw_bars(groups, series, ylabel, title)))
    xs, curves = _curve_series(docs, labels)
    if curves:
        figure = draw_curves(
            xs,
            curves,
            "offered rate asked, --rate (records/s)",
            "end-to-end p99 latency (ms)",
            # Only the sources that have open-loop runs are on this chart.
            "Open loop: latency vs offered rate" + _sources([c.source for c in curves]),
        )
        drawn.append((CURVE_CHART, figure))
    return drawn


def build_report(files: Sequence[Path], out_dir: Path, labels: Sequence[str] = ()) -> list[Path]:
    """Write the charts and summary.md; returns the files written. `labels`: one per file
    (default: source_labels' choice)."""
    if labels and len(labels) != len(files):
        raise ValueError(f"--label given {len(labels)} times for {len(files)} files: one per file")
    docs = [(path, load_results(path)) for path in files]
    sources = source_labels(docs, labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures(docs, sources):
        save(figure, out_dir / name)
        written.append(out_dir / name)
    summary = out_dir / "summary.md"
    summary.write_text(markdown_summary(docs, sources, [p.name for p in written]))
    written.append(summary)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = BenchArgumentParser(
        prog="python -m bench report", description="Charts and a markdown summary of results."
    )
    parser.add_argument("files", nargs="+", type=Path, help="benchmark results JSON files")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME",
        help="legend label of each file's series, one per file in order (default: the file "
        "name; the files of one container run share one); files given the same label are "
        "drawn as one source",
    )
    args = parser.parse_args(argv)
    try:
        written = build_report(args.files, args.out, args.label)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _common_start(names: list[str]) -> str:
    """The longest start every name shares, character by character (os.path.commonprefix,
    which Python 3.15 deprecates for this use)."""
    first, last = min(names), max(names)  # the two that differ soonest, in sorted order
    shared = 0
    while shared < min(len(first), len(last)) and first[shared] == last[shared]:
        shared += 1
    return first[:shared]
