"""What a new user reads first: summary.md's scenario sections are valid Markdown, the
latency-vs-rate chart is drawn against the rate asked with sane limits and counts only the
sources that have open-loop runs, chart legends sit beside the axes, the results path is
absolute, an external cluster's version reads as unknown, and each run opens with short lines."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from test_bench_samples import sample_result

from bench import cli, run_parallel_benchmark
from bench.output import report
from bench.output.results import load_results, write_results
from bench.output.table import WIDTH
from bench.run import context


def _open_loop(rate: float, offered: float, p99: float, **kw: Any) -> Any:
    return sample_result(
        rate_tps=rate,
        open_loop={"target_tps": rate, "offered_tps": offered, "e2e_p99_ms": p99, **kw},
    )


def test_summary_md_scenario_sections_are_one_bold_title_and_one_code_block(
    tmp_path: Path,
) -> None:
    path = write_results(tmp_path / "a.json", {}, [_open_loop(2000.0, 1999.5, 19.1)])
    report.build_report([path], tmp_path / "out")
    summary = (tmp_path / "out" / "summary.md").read_text().splitlines()
    title = next(i for i, line in enumerate(summary) if line.startswith("**Open loop"))
    # The whole title on one bold line, then a blank line and the table in a fenced block
    # that holds table lines only.
    assert summary[title].endswith("left out)**")
    assert summary[title + 1 : title + 3] == ["", "```"]
    end = summary.index("```", title + 3)
    block = summary[title + 3 : end]
    assert block[0].startswith("Run ") and len(block) == 3  # header, rule, one run
    assert set(block[1]) == {"-", "+"} and block[2].startswith("async @2000/s | sleep")


def test_latency_chart_uses_the_rate_asked_and_counts_sources_with_open_loop_runs(
    tmp_path: Path,
) -> None:
    loop = write_results(
        tmp_path / "loop.json",
        {},
        [_open_loop(2000.0, 1999.5, 19.1), _open_loop(2000.0, 2000.6, 9.0)],
    )
    closed = [write_results(tmp_path / f"c{i}.json", {}, [sample_result()]) for i in range(3)]
    docs = [(p, load_results(p)) for p in (loop, *closed)]
    drawn = dict(report.figures(docs, report.source_labels(docs)))
    axes = drawn["latency_vs_rate.png"].axes[0]
    xs = {x for line in axes.get_lines() for x in line.get_xdata()}
    assert xs == {2000.0}  # not 1999.5 and 2000.6
    left, right = axes.get_xlim()
    assert left == 0 and 2000 < right <= 2500
    drawn["latency_vs_rate.png"].canvas.draw()
    assert axes.xaxis.get_major_formatter().get_offset() == ""  # no "+2e3"
    assert "sources" not in axes.get_title()  # one file had open-loop runs, not four
    assert "(4 sources)" in drawn["throughput.png"].axes[0].get_title()


def test_chart_legends_sit_beside_the_axes(tmp_path: Path) -> None:
    runs = [
        sample_result(run_type=m, throughput_tps=t) for m, t in (("baseline", 200.0), ("io", 9e3))
    ]
    paths = [write_results(tmp_path / f"{n}.json", {}, runs) for n in ("a", "b")]
    docs = [(p, load_results(p)) for p in paths]
    for name, figure in report.figures(docs, report.source_labels(docs)):
        figure.canvas.draw()
        axes = figure.axes[0]
        legend = axes.get_legend().get_window_extent()
        assert legend.x0 >= axes.get_window_extent().x1, name  # never over a bar


def test_the_results_path_is_printed_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = run_parallel_benchmark.written_line(Path("bench/results/x.json"))
    assert line == f"JSON summary written to {tmp_path.resolve() / 'bench/results/x.json'}"


def test_an_external_cluster_says_its_version_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYRALLEL_BROKER_KIND", raising=False)
    monkeypatch.delenv("PYRALLEL_BROKER_VERSION", raising=False)
    opts = cli.parse_args(["--bootstrap-servers", "127.0.0.1:39092"])
    with contextlib.ExitStack() as stack:
        info = run_parallel_benchmark._start_broker(opts, stack)
    assert info.version == "unknown (external cluster)"
    assert info.describe().startswith(
        "broker: external cluster at 127.0.0.1:39092, version unknown"
    )
    embedded = run_parallel_benchmark.BrokerInfo("127.0.0.1:1", "kafka", "Apache Kafka 4.1.1")
    assert embedded.describe() == "broker: kafka Apache Kafka 4.1.1 at 127.0.0.1:1"


def test_a_run_opens_with_lines_within_100_columns() -> None:
    opts = cli.parse_args(["--topic-prefix", "pyrallel-benchmark-of-the-new-user"])
    spec = context.run_names(opts, "baseline", "sleep", "0123abcd", rate=10000.0, members=2)
    header = run_parallel_benchmark.run_header(spec)
    lines = header.splitlines()
    assert lines[0] == "== baseline / sleep @10000/s x2"
    assert lines[1] == f"   topic {spec.topic}" and lines[2] == f"   group {spec.group_id}"
    assert max(len(line) for line in lines) <= WIDTH
