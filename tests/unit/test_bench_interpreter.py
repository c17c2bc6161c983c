"""The interpreter in the results: recorded in the metadata, shown by compare and report."""

from __future__ import annotations

import platform
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from test_bench_samples import sample_result

from bench import interpreter
from bench.interpreter import describe_interpreter, interpreter_metadata
from bench.output import compare, report
from bench.output.environment import environment_metadata
from bench.output.jsonlib import JSON_LIBRARY
from bench.output.results import load_results, write_results

FREE_THREADED_OFF = {
    "version": "3.14.0",
    "implementation": "CPython",
    "free_threaded": True,
    "gil_enabled": False,
}
DEFAULT_BUILD = {
    "version": "3.11.7",
    "implementation": "CPython",
    "free_threaded": False,
    "gil_enabled": True,
}


def test_every_results_file_records_the_interpreter_and_json_library(tmp_path: Path) -> None:
    meta = environment_metadata()
    probe = getattr(sys, "_is_gil_enabled", None)
    assert meta["interpreter"] == {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": True if probe is None else probe(),
    }
    assert meta["json_library"] == JSON_LIBRARY
    path = write_results(tmp_path / "r.json", meta, [sample_result()])
    assert load_results(path)["metadata"]["interpreter"] == meta["interpreter"]


def test_free_threaded_build_and_gil_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sysconfig, "get_config_var", lambda name: 1)
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert interpreter_metadata()["free_threaded"] is True
    assert interpreter_metadata()["gil_enabled"] is False
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True)  # PYTHON_GIL=1, or an old module
    assert interpreter.gil_enabled() is True
    monkeypatch.delattr(sys, "_is_gil_enabled")  # before 3.13: there is always a GIL
    monkeypatch.setattr(sysconfig, "get_config_var", lambda name: None)
    assert interpreter_metadata()["gil_enabled"] is True
    assert interpreter_metadata()["free_threaded"] is False


def test_describe_interpreter() -> None:
    assert describe_interpreter({"interpreter": DEFAULT_BUILD}) == "CPython 3.11.7"
    assert describe_interpreter({"interpreter": FREE_THREADED_OFF}) == "CPython 3.14.0t, GIL off"
    on = {**FREE_THREADED_OFF, "gil_enabled": True}
    assert describe_interpreter({"interpreter": on}) == "CPython 3.14.0t, GIL on"
    assert describe_interpreter({"python": "CPython 3.12.1"}) == "CPython 3.12.1"  # older file
    assert describe_interpreter({}) == "?"


def _pair(tmp_path: Path, meta_a: dict[str, Any], meta_b: dict[str, Any]) -> tuple[Path, Path]:
    return (
        write_results(tmp_path / "a.json", meta_a, [sample_result(workload="pycpu")]),
        write_results(tmp_path / "b.json", meta_b, [sample_result(workload="pycpu")]),
    )


def test_compare_names_a_different_interpreter_and_json_library(tmp_path: Path) -> None:
    a, b = _pair(
        tmp_path,
        {"python": "CPython 3.11.7", "interpreter": DEFAULT_BUILD, "json_library": "orjson 3.1"},
        {
            "python": "CPython 3.14.0",
            "interpreter": FREE_THREADED_OFF,
            "json_library": "json (standard library)",
        },
    )
    diff = {key: (va, vb) for key, va, vb in compare.metadata_diff(*_metadata(a, b))}
    assert diff["python"] == ("CPython 3.11.7", "CPython 3.14.0t, GIL off")
    assert diff["json_library"] == ("orjson 3.1", "json (standard library)")
    printed = compare.compare_files(a, b)
    assert "CPython 3.14.0t, GIL off" in printed


def test_compare_is_silent_when_the_interpreters_are_the_same(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, {"interpreter": DEFAULT_BUILD}, {"interpreter": dict(DEFAULT_BUILD)})
    keys = [key for key, _, _ in compare.metadata_diff(*_metadata(a, b))]
    assert "python" not in keys


def test_report_summary_shows_the_interpreter_and_json_library(tmp_path: Path) -> None:
    a, _ = _pair(
        tmp_path,
        {"interpreter": FREE_THREADED_OFF, "json_library": "json (standard library)"},
        {},
    )
    written = report.build_report([a], tmp_path / "out")
    summary = next(p for p in written if p.name == "summary.md").read_text()
    assert "CPython 3.14.0t, GIL off" in summary
    assert "JSON json (standard library)" in summary


def _metadata(a: Path, b: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_results(a)["metadata"], load_results(b)["metadata"]
