"""Console tables of the scenario figures (key skew, stuck key, open loop, group), each next to
its bound, and of the output topic's check (--outputs); a table appears only when some result
used its option, so no row is all blanks.

By default each table fits bench.output.table.WIDTH columns (short headers, compact numbers,
the settings columns left out); `wide` gives every column with fixed decimals.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.output.table import WIDTH, fmt_compact, fmt_number, render, run_label

Result = dict[str, Any]


def _pct(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "-"


@dataclass(frozen=True)
class Col:
    """One column: its wide header, its default header (None: only with --wide), the value
    of a result's scenario object, and the decimals of the wide table."""

    wide: str
    narrow: str | None
    value: Callable[[dict[str, Any]], Any]
    digits: int = 2

    def cell(self, figures: dict[str, Any], wide: bool) -> str:
        value = self.value(figures)
        return fmt_number(value, self.digits) if wide else fmt_compact(value)


def _get(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda figures: figures.get(name)


def _col(wide: str, narrow: str | None, name: str, digits: int = 2) -> Col:
    return Col(wide, narrow, _get(name), digits)


@dataclass(frozen=True)
class Scenario:
    title: str
    figures: Callable[[Result], dict[str, Any] | None]  # None: the option was not used
    columns: tuple[Col, ...]


def _skewed(r: Result) -> Result | None:
    return None if r.get("key_distribution", "uniform") == "uniform" else r


def _object(name: str) -> Callable[[Result], dict[str, Any] | None]:
    def figures(r: Result) -> dict[str, Any] | None:
        value = r.get(name)
        return value if isinstance(value, dict) else None

    return figures


def _group(r: Result) -> dict[str, Any] | None:
    """The group's figures, with the result's join time (the last member's first assignment)."""
    g = r.get("group")
    return {**g, "join_time_sec": r.get("join_time_sec")} if isinstance(g, dict) else None


def _fetch_wait(o: dict[str, Any]) -> str:
    fetch = o.get("consumer_fetch") or {}
    return str(fetch.get("fetch.wait.max.ms", "-")).split(" ")[0]


def _output_mode(o: dict[str, Any]) -> str:
    return str(o.get("mode", "-")).replace("_", " ")


def _members_tps(g: dict[str, Any]) -> str:
    return " / ".join(fmt_number(v, 0) for v in g.get("member_tps") or [])


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "Key skew (bound: records / max(total work / parallelism, hottest key's work))",
        _skewed,
        (
            Col("Keys", "Keys", lambda r: str(r.get("key_distribution"))),
            Col("Hottest key", "Hot key", lambda r: _pct(r.get("hottest_key_share"))),
            Col("Hottest part.", "Hot part.", lambda r: _pct(r.get("hottest_partition_share"))),
            _col("TPS", "TPS", "throughput_tps"),
            _col("Skew bound", "Bound", "bound_tps", 1),
            _col("Eff", "Eff", "efficiency"),
        ),
    ),
    Scenario(
        "Stuck key (others: the other keys while the record was stuck; reference: second phase "
        "without it)",
        _object("stuck_key"),
        (
            _col("Stuck ms", "Stuck ms", "stuck_ms", 0),
            _col("Window s", "Window s", "window_sec"),
            _col("Others TPS", "Others", "others_tps"),
            _col("Others bound", "Bound", "others_bound_tps", 1),
            _col("Reference TPS", "Reference", "reference_tps"),
            _col("Ratio", "Ratio", "ratio"),
        ),
    ),
    Scenario(
        "Open loop (end-to-end: record timestamp -> completion, ms; bound: min(offered, bound) "
        "and the service time; floor: a plain consume loop's timestamp -> receipt at the same "
        "rate; own: the consumer's receipt -> completion; the warm-up's records left out)",
        _object("open_loop"),
        (
            _col("Offered", "Offered", "offered_tps", 0),
            _col("Achieved", "Achieved", "achieved_tps", 0),
            _col("Bound", None, "achieved_bound_tps", 0),
            _col("Kept up", "Kept", "kept_up"),
            _col("E2E p50", "E2E p50", "e2e_p50_ms", 1),
            _col("p95", None, "e2e_p95_ms", 1),
            _col("p99", "p99", "e2e_p99_ms", 1),
            _col("max ms", None, "e2e_max_ms", 1),
            # By default the three p99s side by side (end-to-end, floor, own): the floor's p50
            # would push a long run label ("baseline @10000/s") past WIDTH.
            _col("Floor p50", None, "floor_e2e_p50_ms", 1),
            _col("Floor p99", "Fl. p99", "floor_e2e_p99_ms", 1),
            _col("Own p50", None, "consumer_p50_ms", 1),
            _col("Own p99", "Own p99", "consumer_p99_ms", 1),
            _col("E2E bound", None, "e2e_bound_ms", 1),
            _col("Warm-up s", None, "warmup_sec", 1),
            _col("linger.ms", None, "producer_linger_ms"),
            Col("fetch.wait.max.ms", None, _fetch_wait),
        ),
    ),
    Scenario(
        "Group (scaling efficiency: aggregate / (members with partitions x one member's bound))",
        _group,
        (
            _col("Aggregate TPS", "Aggr. TPS", "aggregate_tps"),
            Col("Member TPS", "Member TPS", _members_tps),
            _col("Group bound", "Bound", "group_bound_tps", 1),
            _col("1-member bound", None, "one_member_bound_tps", 1),
            _col("Scaling eff", "Scaling", "scaling_efficiency"),
            _col("vs 1 member", "vs 1", "speedup_vs_one_member"),
            _col("Join s", "Join s", "join_time_sec"),
            _col("Rebalance s", "Rebal. s", "rebalance_time_sec"),
        ),
    ),
    Scenario(
        "Outputs (read back with read_committed: input records with no output, outputs beyond "
        "the first, outputs out of input order per key; end-to-end: input timestamp -> the "
        "output's log-append time, ms)",
        _object("outputs"),
        (
            Col("Mode", "Mode", _output_mode),
            _col("Read", None, "read", 0),
            _col("Missing", "Miss", "missing", 0),
            _col("Duplicates", "Dup", "duplicates", 0),
            _col("Order!", "Order!", "ordering_violations", 0),
            _col("Extra", None, "extra", 0),
            _col("E2E p50", "E2E p50", "e2e_p50_ms", 1),
            _col("p95", None, "e2e_p95_ms", 1),
            _col("p99", "p99", "e2e_p99_ms", 1),
            _col("max ms", None, "e2e_max_ms", 1),
            _col("Tx committed", None, "transactions_committed", 0),
            _col("Tx aborted", None, "transactions_aborted", 0),
        ),
    ),
)


def scenario_sections(results: Sequence[Result], wide: bool = False) -> list[tuple[str, str]]:
    """(title, table) per scenario some result used; the table within WIDTH columns unless
    `wide`, the title on one line (the report's markdown wraps it itself)."""
    out = []
    for scenario in SCENARIOS:
        columns = [c for c in scenario.columns if wide or c.narrow is not None]
        rows = []
        for r in results:
            figures = scenario.figures(r)
            if figures is not None:
                cells = [c.cell(figures, wide) for c in columns]
                rows.append([run_label(r), str(r.get("workload", "?")), *cells])
        if rows:
            headers = ["Run", "Workload", *(c.wide if wide else str(c.narrow) for c in columns)]
            out.append((scenario.title, render(headers, rows, 2)))
    return out


def scenario_tables(results: Sequence[Result], wide: bool = False) -> list[str]:
    """The console's scenario tables, each under its title (wrapped to WIDTH unless `wide`)."""
    return [
        (title if wide else textwrap.fill(title, WIDTH)) + "\n" + table
        for title, table in scenario_sections(results, wide)
    ]
