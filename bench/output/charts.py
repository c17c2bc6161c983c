"""The report's charts (matplotlib, Agg backend: no display needed).

Readable with several files: every series is labelled with where it comes from (run id and
host), has its own colour, and marks incomplete or profiled runs (hatched bars, a note in the
label); a log scale is used when values span more than LOG_SCALE_SPAN; a missing value is left
out instead of drawn as a zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_SCALE_SPAN = 20.0


@dataclass
class Series:
    """One bar series or curve: a label and its values per x position (NaN: missing)."""

    label: str
    values: list[float]
    marked: list[bool] = field(default_factory=list)  # incomplete or profiled, per value


def needs_log_scale(values: Sequence[float], span: float = LOG_SCALE_SPAN) -> bool:
    """Whether the positive finite values span more than `span` times."""
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return len(finite) >= 2 and max(finite) / min(finite) > span


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(plt: Any, count: int) -> list[Any]:
    cmap = plt.get_cmap("tab10" if count <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(count)]


def bar_chart(
    groups: Sequence[str], series: Sequence[Series], ylabel: str, title: str, path: Path
) -> None:
    """Grouped bars: one group per x label, one bar per series."""
    plt = _pyplot()
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(groups) + 0.5 * len(series)), 4.8))
    colours = _colours(plt, len(series))
    for i, one in enumerate(series):
        for x, value in enumerate(one.values):
            if not math.isfinite(value):
                continue  # no bar, no "n/a": the legend says which series ran
            marked = bool(one.marked and one.marked[x])
            rect = ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                value,
                width,
                color=colours[i],
                hatch="//" if marked else None,
                edgecolor="black" if marked else colours[i],
                label=one.label if x == _first_finite(one.values) else None,
            )
            ax.bar_label(rect, labels=[_short(value) + ("*" if marked else "")], fontsize=7)
    if needs_log_scale([v for s in series for v in s.values]):
        ax.set_yscale("log")
        ylabel += " (log scale)"
    ax.set_xticks(range(len(groups)), groups)
    _finish(fig, ax, ylabel, title, path, any(any(s.marked) for s in series))


def curve_chart(
    xs: Sequence[Sequence[float]],
    series: Sequence[Series],
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
) -> None:
    """One line per series (xs[i] are the x values of series i), e.g. latency vs offered rate."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = _colours(plt, len(series))
    for i, one in enumerate(series):
        points = sorted(
            (x, y, bool(one.marked and one.marked[j]))
            for j, (x, y) in enumerate(zip(xs[i], one.values, strict=True))
            if math.isfinite(x) and math.isfinite(y)
        )
        if not points:
            continue
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], "-o", color=colours[i], label=one.label
        )
        for x, y, marked in points:
            if marked:
                ax.plot([x], [y], "x", color="black", markersize=9)
    if needs_log_scale([v for s in series for v in s.values]):
        ax.set_yscale("log")
        ylabel += " (log scale)"
    ax.set_xlabel(xlabel)
    _finish(fig, ax, ylabel, title, path, any(any(s.marked) for s in series))


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _first_finite(values: Sequence[float]) -> int:
    return next((i for i, v in enumerate(values) if math.isfinite(v)), -1)


def _finish(fig: Any, ax: Any, ylabel: str, title: str, path: Path, marked: bool) -> None:
    ax.set_ylabel(ylabel)
    ax.set_title(
        title + ("\n(* / hatched / x: incomplete or profiled run)" if marked else ""), fontsize=10
    )
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
