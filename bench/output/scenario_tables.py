"""Console tables of the scenario figures (key skew, stuck key, open loop, group), each next to
its bound; a table appears only when some result used its option, so no row is all blanks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.output.table import fmt_number, render, run_label

Row = list[str]


def _pct(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "-"


def _skew(r: dict[str, Any]) -> Row | None:
    if r.get("key_distribution", "uniform") == "uniform":
        return None
    return [
        str(r.get("key_distribution")),
        _pct(r.get("hottest_key_share")),
        _pct(r.get("hottest_partition_share")),
        fmt_number(r.get("throughput_tps")),
        fmt_number(r.get("bound_tps"), 1),
        fmt_number(r.get("efficiency")),
    ]


def _stuck(r: dict[str, Any]) -> Row | None:
    s = r.get("stuck_key")
    if not isinstance(s, dict):
        return None
    return [
        fmt_number(s.get("stuck_ms"), 0),
        fmt_number(s.get("window_sec"), 2),
        fmt_number(s.get("others_tps")),
        fmt_number(s.get("others_bound_tps"), 1),
        fmt_number(s.get("reference_tps")),
        fmt_number(s.get("ratio")),
    ]


def _open_loop(r: dict[str, Any]) -> Row | None:
    o = r.get("open_loop")
    if not isinstance(o, dict):
        return None
    fetch = o.get("consumer_fetch") or {}
    return [
        fmt_number(o.get("offered_tps"), 0),
        fmt_number(o.get("achieved_tps"), 0),
        fmt_number(o.get("achieved_bound_tps"), 0),
        fmt_number(o.get("kept_up")),
        fmt_number(o.get("e2e_p50_ms"), 1),
        fmt_number(o.get("e2e_p95_ms"), 1),
        fmt_number(o.get("e2e_p99_ms"), 1),
        fmt_number(o.get("e2e_max_ms"), 1),
        fmt_number(o.get("e2e_bound_ms"), 1),
        fmt_number(o.get("producer_linger_ms")),
        str(fetch.get("fetch.wait.max.ms", "-")).split(" ")[0],
    ]


def _group(r: dict[str, Any]) -> Row | None:
    g = r.get("group")
    if not isinstance(g, dict):
        return None
    return [
        fmt_number(g.get("aggregate_tps")),
        " / ".join(fmt_number(v, 0) for v in g.get("member_tps") or []),
        fmt_number(g.get("group_bound_tps"), 1),
        fmt_number(g.get("one_member_bound_tps"), 1),
        fmt_number(g.get("scaling_efficiency")),
        fmt_number(g.get("speedup_vs_one_member")),
        fmt_number(r.get("join_time_sec")),
        fmt_number(g.get("rebalance_time_sec")),
    ]


TABLES: tuple[tuple[str, list[str], Callable[[dict[str, Any]], Row | None]], ...] = (
    (
        "Key skew (bound: records / max(total work / parallelism, hottest key's work))",
        ["Keys", "Hottest key", "Hottest part.", "TPS", "Skew bound", "Eff"],
        _skew,
    ),
    (
        "Stuck key (others: the other keys while the record was stuck; reference: second phase "
        "without it)",
        ["Stuck ms", "Window s", "Others TPS", "Others bound", "Reference TPS", "Ratio"],
        _stuck,
    ),
    (
        "Open loop (end-to-end: record timestamp -> completion; bound: min(offered, bound) and "
        "the service time)",
        [
            "Offered",
            "Achieved",
            "Bound",
            "Kept up",
            "E2E p50",
            "p95",
            "p99",
            "max ms",
            "E2E bound",
            "linger.ms",
            "fetch.wait.max.ms",
        ],
        _open_loop,
    ),
    (
        "Group (scaling efficiency: aggregate / (members with partitions x one member's bound))",
        [
            "Aggregate TPS",
            "Member TPS",
            "Group bound",
            "1-member bound",
            "Scaling eff",
            "vs 1 member",
            "Join s",
            "Rebalance s",
        ],
        _group,
    ),
)


def scenario_tables(results: Sequence[dict[str, Any]]) -> list[str]:
    """One titled table per scenario some result used."""
    out = []
    for title, headers, row_of in TABLES:
        rows = []
        for r in results:
            cells = row_of(r)
            if cells is not None:
                rows.append([run_label(r), str(r.get("workload", "?")), *cells])
        if rows:
            out.append(title + "\n" + render(["Run", "Workload", *headers], rows, 2))
    return out
