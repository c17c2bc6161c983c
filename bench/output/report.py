"""`python -m bench report FILES... --out DIR`: PNG charts and a markdown summary.

Writes DIR/throughput.png and DIR/p99_latency.png (grouped bars: one group per workload, one bar
per run and file), DIR/latency_vs_rate.png when open-loop runs are present (end-to-end p99
against the offered rate, one curve per mode and file) and DIR/summary.md (a table per file,
the scenario tables, links to the charts).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.output.charts import Series, bar_chart, curve_chart
from bench.output.results import load_results
from bench.output.scenario_tables import scenario_tables
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


def source_labels(docs: Sequence[tuple[Path, Doc]]) -> list[str]:
    """Where each file's series come from: "run <id> on <host>" (the file name when the
    metadata lacks them); numbered when two files would read the same."""
    labels = []
    for path, doc in docs:
        meta = doc.get("metadata") or {}
        run_id, host = meta.get("run_id"), meta.get("host")
        label = f"run {run_id}" if run_id else path.stem
        labels.append(f"{label} on {host}" if host else label)
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}: {label}" for i, label in enumerate(labels)]
    return labels


def is_marked(result: dict[str, Any], meta: dict[str, Any]) -> bool:
    """Incomplete or profiled: its numbers must not be read as a clean measurement."""
    profiled = bool(result.get("profile_files")) or bool((meta.get("options") or {}).get("profile"))
    return result.get("complete") is not True or profiled


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else math.nan


def _bar_series(
    docs: Sequence[tuple[Path, Doc]], labels: list[str], field: str
) -> tuple[list[str], list[Series]]:
    workloads = sorted(
        {str(r.get("workload", "?")) for _, doc in docs for r in doc["results"]},
        key=lambda w: (WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else 99, w),
    )
    mode_rank = {m: i for i, m in enumerate(MODE_ORDER)}
    series: list[Series] = []
    for (_, doc), source in zip(docs, labels, strict=True):
        runs: dict[str, Series] = {}
        ordered = sorted(doc["results"], key=lambda r: mode_rank.get(r.get("run_type"), 99))
        for r in ordered:
            name = run_label(r) + (f" ({source})" if len(docs) > 1 else "")
            one = runs.setdefault(
                name, Series(name, [math.nan] * len(workloads), [False] * len(workloads))
            )
            x = workloads.index(str(r.get("workload", "?")))
            one.values[x] = _number(r.get(field))
            one.marked[x] = is_marked(r, doc["metadata"])
        series += [s for s in runs.values() if any(math.isfinite(v) for v in s.values)]
    return workloads, series


def _curve_series(
    docs: Sequence[tuple[Path, Doc]], labels: list[str]
) -> tuple[list[list[float]], list[Series]]:
    """End-to-end p99 against the offered rate, per (file, mode, workload, members)."""
    xs: dict[str, list[float]] = {}
    curves: dict[str, Series] = {}
    for (_, doc), source in zip(docs, labels, strict=True):
        for r in doc["results"]:
            loop = r.get("open_loop")
            if not isinstance(loop, dict):
                continue
            members = r.get("members") or 1
            name = f"{r.get('run_type')}/{r.get('workload')}" + (
                f" x{members}" if members > 1 else ""
            )
            name += f" ({source})" if len(docs) > 1 else ""
            one = curves.setdefault(name, Series(name, [], []))
            offered = _number(loop.get("offered_tps"))
            xs.setdefault(name, []).append(
                offered if math.isfinite(offered) else _number(loop.get("target_tps"))
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
        f"broker {broker.get('kind', '?')} {broker.get('version', '')}".rstrip(),
        f"{meta.get('cores', '?')} cores ({meta.get('cpu_model', '?')})",
        f"host {meta.get('host', '?')}",
        f"Python {meta.get('python', '?')}",
        f"codec {meta.get('codec', '?')}, cpu kernel {meta.get('cpu_kernel', '?')}",
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
        for table in scenario_tables(doc["results"]):
            title, _, body = table.partition("\n")
            lines += [f"**{title}**", "", "```", body, "```", ""]
    lines += ["## Charts", ""]
    lines += [f"![{name}]({name})" for name in charts]
    lines += [
        "",
        "`*`: incomplete or profiled run (not a clean measurement). TPS counts records per "
        "second from the first record received to the last completed; latency is each "
        "record's time from receipt to completion (queueing plus execution), so more in-flight "
        "work raises both TPS and latency. End-to-end latency (open loop) runs from the "
        "record's timestamp to its completion.",
        "",
    ]
    return "\n".join(lines)


def build_report(files: Sequence[Path], out_dir: Path) -> list[Path]:
    """Write the charts and summary.md; returns the files written."""
    docs = [(path, load_results(path)) for path in files]
    labels = source_labels(docs)
    where = f" ({len(docs)} files)" if len(docs) > 1 else ""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, field, ylabel in BAR_CHARTS:
        groups, series = _bar_series(docs, labels, field)
        title = ylabel.split(" (")[0] + " per run and workload" + where
        bar_chart(groups, series, ylabel, title, out_dir / name)
        written.append(out_dir / name)
    xs, curves = _curve_series(docs, labels)
    if curves:
        curve_chart(
            xs,
            curves,
            "offered rate (records/s)",
            "end-to-end p99 latency (ms)",
            "Open loop: latency vs offered rate" + where,
            out_dir / CURVE_CHART,
        )
        written.append(out_dir / CURVE_CHART)
    summary = out_dir / "summary.md"
    summary.write_text(markdown_summary(docs, labels, [p.name for p in written]))
    written.append(summary)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench report", description="Charts and a markdown summary of results."
    )
    parser.add_argument("files", nargs="+", type=Path, help="benchmark results JSON files")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    try:
        written = build_report(args.files, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
