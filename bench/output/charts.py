"""The report's charts (matplotlib, Agg backend: no display needed).

Readable with several files: a series' colour says which run it is (one colour per mode, the
same in every file), its hatch (bars) or line style (curves) which file or run of files it comes
from, and its legend label says both. Incomplete or profiled runs are marked (a black edge and
`*` on bars, an `x` on curves); a log scale is used when values span more than LOG_SCALE_SPAN;
a missing value is left out instead of drawn as a zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_SCALE_SPAN = 20.0
# One per source, the first plain: a single file's chart has no hatching at all.
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")
LINE_STYLES = ("-", "--", ":", "-.")
LEGEND_WIDTH_IN = 2.0


@dataclass
class Series:
    """One bar series or curve: a label and its values per x position (NaN: missing).

    `key` picks the colour (the run: mode, rate, members), `source` the hatch or line style
    (where the values come from); series sharing a key share a colour across sources."""

    label: str
    values: list[float]
    marked: list[bool] = field(default_factory=list)  # incomplete or profiled, per value
    key: str = ""
    source: str = ""


def needs_log_scale(values: Sequence[float], span: float = LOG_SCALE_SPAN) -> bool:
    """Whether the positive finite values span more than `span` times."""
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return len(finite) >= 2 and max(finite) / min(finite) > span


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _palette(items: Sequence[str], styles: Sequence[Any]) -> dict[str, Any]:
    """Each distinct item, in order of first appearance, gets the next style (cycling)."""
    distinct = list(dict.fromkeys(items))
    return {item: styles[i % len(styles)] for i, item in enumerate(distinct)}


def _colours(plt: Any, series: Sequence[Series]) -> dict[str, Any]:
    keys = [s.key or s.label for s in series]
    cmap = plt.get_cmap("tab10" if len(set(keys)) <= 10 else "tab20")
    return _palette(keys, [cmap(i) for i in range(cmap.N)])


def draw_bars(groups: Sequence[str], series: Sequence[Series], ylabel: str, title: str) -> Any:
    """Grouped bars: one group per x label, one bar per series; returns the matplotlib Figure."""
    plt = _pyplot()
    width = 0.8 / max(1, len(series))
    # LEGEND_WIDTH_IN more for the legend beside the axes.
    width_in = max(6.0, 2.2 * len(groups) + 0.5 * len(series)) + LEGEND_WIDTH_IN
    fig, ax = plt.subplots(figsize=(width_in, 4.8))
    colours = _colours(plt, series)
    hatches = _palette([s.source for s in series], HATCHES)
    for i, one in enumerate(series):
        for x, value in enumerate(one.values):
            if not math.isfinite(value):
                continue  # no bar, no "n/a": the legend says which series ran
            marked = bool(one.marked and one.marked[x])
            rect = ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                value,
                width,
                color=colours[one.key or one.label],
                hatch=hatches[one.source] or None,
                edgecolor="black" if marked or hatches[one.source] else "none",
                linewidth=1.5 if marked else 0.5,
                label=one.label if x == _first_finite(one.values) else None,
            )
            ax.bar_label(rect, labels=[_short(value) + ("*" if marked else "")], fontsize=7)
    if needs_log_scale([v for s in series for v in s.values]):
        ax.set_yscale("log")
        ylabel += " (log scale)"
    ax.set_xticks(range(len(groups)), groups)
    _finish(ax, ylabel, title, any(any(s.marked) for s in series))
    return fig


def draw_curves(
    xs: Sequence[Sequence[float]],
    series: Sequence[Series],
    xlabel: str,
    ylabel: str,
    title: str,
) -> Any:
    """One line per series (xs[i] are the x values of series i), e.g. latency vs offered rate;
    returns the matplotlib Figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5 + LEGEND_WIDTH_IN, 4.8))
    colours = _colours(plt, series)
    styles = _palette([s.source for s in series], LINE_STYLES)
    for i, one in enumerate(series):
        points = sorted(
            (x, y, bool(one.marked and one.marked[j]))
            for j, (x, y) in enumerate(zip(xs[i], one.values, strict=True))
            if math.isfinite(x) and math.isfinite(y)
        )
        if not points:
            continue
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o",
            linestyle=styles[one.source],
            color=colours[one.key or one.label],
            label=one.label,
        )
        for x, y, marked in points:
            if marked:
                ax.plot([x], [y], "x", color="black", markersize=9)
    if needs_log_scale([v for s in series for v in s.values]):
        ax.set_yscale("log")
        ylabel += " (log scale)"
    ax.set_xlabel(xlabel)
    # From 0 to past the highest rate, in plain numbers: matplotlib's own limits around a
    # single rate read "-0.4 .. +0.6, +2e3".
    finite = [x for row in xs for x in row if math.isfinite(x)]
    if finite:
        ax.set_xlim(0, max(finite) * 1.1 or 1.0)
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    _finish(ax, ylabel, title, any(any(s.marked) for s in series))
    return fig


def save(fig: Any, path: Path) -> None:
    """Write the figure as PNG and release it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the legend beside the axes included
    _pyplot().close(fig)


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _first_finite(values: Sequence[float]) -> int:
    return next((i for i, v in enumerate(values) if math.isfinite(v)), -1)


def _finish(ax: Any, ylabel: str, title: str, marked: bool) -> None:
    ax.set_ylabel(ylabel)
    note = "\n(* / black edge / x: incomplete or profiled run)" if marked else ""
    ax.set_title(title + note, fontsize=10)
    # Beside the axes, never over a bar or a point; save() keeps it in the image.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
