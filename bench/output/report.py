"""`python -m bench report FILES... --out DIR`: PNG charts and a markdown summary.

Writes DIR/throughput.png and DIR/p99_latency.png (grouped bars: one group per workload, one bar
per mode and file) and DIR/summary.md (a table per file, links to the charts). matplotlib runs
on the Agg backend, so no display is needed.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.output.results import load_results
from bench.output.table import fmt_number
from bench.workloads import WORKLOAD_NAMES
from pyrallel_consumer.engines.registry import ENGINE_NAMES

CHARTS: tuple[tuple[str, str, str], ...] = (
    # file name, result field, y label
    ("throughput.png", "throughput_tps", "throughput (records/s)"),
    ("p99_latency.png", "p99_processing_ms", "p99 processing time (ms)"),
)
# Bars and groups in registry order; names a file holds that no registry knows (an older or
# newer bench) go last.
MODE_ORDER = ENGINE_NAMES
WORKLOAD_ORDER = WORKLOAD_NAMES


def _series(docs: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Workloads (x groups) and (file label, mode) bars present in the data, in a fixed order."""
    workloads: set[str] = set()
    bars: list[tuple[str, str]] = []
    for label, doc in docs:
        for result in doc["results"]:
            workloads.add(result.get("workload", "?"))
            bar = (label, result.get("run_type", "?"))
            if bar not in bars:
                bars.append(bar)
    order = {w: i for i, w in enumerate(WORKLOAD_ORDER)}
    mode_rank = {m: i for i, m in enumerate(MODE_ORDER)}
    labels = [label for label, _ in docs]
    bars.sort(key=lambda b: (labels.index(b[0]), mode_rank.get(b[1], 99)))
    return sorted(workloads, key=lambda w: (order.get(w, 99), w)), bars


def _value(doc: dict[str, Any], mode: str, workload: str, field: str) -> float:
    for result in doc["results"]:
        if result.get("run_type") == mode and result.get("workload") == workload:
            value = result.get(field)
            if isinstance(value, int | float) and math.isfinite(value):
                return float(value)
    return math.nan


def plot_chart(docs: list[tuple[str, dict[str, Any]]], field: str, ylabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads, bars = _series(docs)
    by_label = dict(docs)
    width = 0.8 / max(1, len(bars))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(workloads) + 0.4 * len(bars)), 4.5))
    for i, (label, mode) in enumerate(bars):
        heights = [_value(by_label[label], mode, w, field) for w in workloads]
        xs = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(workloads))]
        name = f"{mode} ({label})" if label else mode
        rects = ax.bar(xs, [0 if math.isnan(h) else h for h in heights], width, label=name)
        ax.bar_label(
            rects,
            labels=["n/a" if math.isnan(h) else f"{h:,.0f}" for h in heights],
            fontsize=7,
            padding=2,
        )
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel(ylabel)
    ax.set_title(ylabel.split(" (")[0] + " per mode and workload")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _settings(meta: dict[str, Any]) -> str:
    options = meta.get("options") or {}
    broker = meta.get("broker") or {}
    return (
        f"{options.get('num_messages', '?')} messages, {options.get('num_keys', '?')} keys, "
        f"{options.get('num_partitions', '?')} partitions, ordering "
        f"{options.get('ordering', '?')}; broker {broker.get('kind', '?')} "
        f"{broker.get('version', '')}; {meta.get('cores', '?')} cores "
        f"({meta.get('cpu_model', '?')}); Python {meta.get('python', '?')}; codec "
        f"{meta.get('codec', '?')}, cpu kernel {meta.get('cpu_kernel', '?')}; commit "
        f"{meta.get('git_commit') or 'n/a'}; {meta.get('utc_time', '?')}"
    )


def markdown_summary(docs: list[tuple[Path, dict[str, Any]]], charts: list[str]) -> str:
    lines = ["# Benchmark report", ""]
    for path, doc in docs:
        lines += [
            f"## {path.name}",
            "",
            _settings(doc["metadata"]),
            "",
            "| mode | workload | records | TPS | bound TPS | efficiency | avg ms | p99 ms "
            "| join s | complete |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in doc["results"]:
            lines.append(
                f"| {r.get('run_type')} | {r.get('workload')} | "
                f"{fmt_number(r.get('messages_processed'))} | "
                f"{fmt_number(r.get('throughput_tps'))} | {fmt_number(r.get('bound_tps'), 1)} | "
                f"{fmt_number(r.get('efficiency'))} | {fmt_number(r.get('avg_processing_ms'))} | "
                f"{fmt_number(r.get('p99_processing_ms'))} | "
                f"{fmt_number(r.get('join_time_sec'))} | {fmt_number(r.get('complete'))} |"
            )
        lines.append("")
    lines += ["## Charts", ""]
    lines += [f"![{name}]({name})" for name in charts]
    lines += [
        "",
        "TPS counts records per second from the first record received to the last "
        "completed; latency is each record's time from receipt to completion (queueing "
        "plus execution), so more in-flight work raises both TPS and latency.",
        "",
    ]
    return "\n".join(lines)


def build_report(files: Sequence[Path], out_dir: Path) -> list[Path]:
    """Write the charts and summary.md; returns the files written."""
    docs = [(path, load_results(path)) for path in files]
    # Bars are labelled by file only when several files are charted together.
    many = len(docs) > 1
    labelled = [(path.stem if many else "", doc) for path, doc in docs]
    if many and len({label for label, _ in labelled}) < len(labelled):
        labelled = [(f"{i + 1}:{label}", doc) for i, (label, doc) in enumerate(labelled)]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, field, ylabel in CHARTS:
        plot_chart(labelled, field, ylabel, out_dir / name)
        written.append(out_dir / name)
    summary = out_dir / "summary.md"
    summary.write_text(markdown_summary(docs, [name for name, _, _ in CHARTS]))
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
