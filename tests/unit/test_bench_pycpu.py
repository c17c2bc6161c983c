"""The pycpu workload: JSON decode + pure-Python arithmetic, calibrated, on every engine."""

from __future__ import annotations

import json
import pickle

import pytest
from engine_support import collect, engine_config, make_items

from bench import cli
from bench.measure import bounds
from bench.workloads import ALL_WORKLOADS, WORKLOADS, WorkloadSettings, workload_class
from bench.workloads import pycpu as pycpu_module
from bench.workloads.payload import json_part, make_value
from bench.workloads.pycpu import PyCpuWorkload, pycpu_sync, pycpu_value
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.registry import ENGINE_NAMES, engine_spec
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

SETTINGS = WorkloadSettings(pycpu_iterations=50)


def _reference(seq: int, iterations: int) -> int:
    """The generator of the module docstring, written out again: what pycpu_value must give."""
    state = seq + len(json.loads(json_part(make_value(seq)))["pad"])
    for _ in range(iterations):
        state = (state * 1103515245 + 12345) % 2**31
    return state


def test_pycpu_is_registered_and_runs_only_when_named() -> None:
    assert workload_class("pycpu") is PyCpuWorkload
    assert "pycpu" not in ALL_WORKLOADS  # `--workload all` stays the benchmark document's
    opts = cli.parse_args(
        ["--workload", "pycpu", "--worker-pycpu-iterations", "7", "--pycpu-service-ms", "0.25"]
    )
    assert opts.workloads == ["pycpu"]
    assert (opts.worker_pycpu_iterations, opts.pycpu_service_ms) == (7, 0.25)
    defaults = cli.parse_args([])
    assert defaults.worker_pycpu_iterations == WorkloadSettings().pycpu_iterations
    assert defaults.pycpu_service_ms is None


@pytest.mark.parametrize("bad", ["0", "-3", "x"])
def test_pycpu_iterations_must_be_positive(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--worker-pycpu-iterations", bad])
    assert "--worker-pycpu-iterations" in capsys.readouterr().err


def test_the_value_is_a_json_object_after_the_marker() -> None:
    value = make_value(12)
    assert value.startswith(b"000000000012:") and len(value) == 100
    assert json.loads(json_part(value))["seq"] == 12


def test_pycpu_decodes_the_value_and_does_the_fixed_arithmetic() -> None:
    for seq in (0, 12, 99_999):
        assert pycpu_value(make_value(seq), 300) == _reference(seq, 300)
    assert pycpu_value(make_value(5), 1) != pycpu_value(make_value(5), 2)
    with pytest.raises(json.JSONDecodeError):
        pycpu_value(b"not the bench's value", 10)


def test_one_sync_handler_for_every_engine_picklable_for_workers() -> None:
    workload = PyCpuWorkload(SETTINGS)
    for engine in ENGINE_NAMES:
        handler = pickle.loads(pickle.dumps(workload.handler(engine)))
        assert handler.func is pycpu_sync and handler.args == (50,)
    with pytest.raises(ValueError, match="engine must be one of"):
        workload.handler("threads")


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_every_engine_runs_the_handler(engine: str, engines: list[Engine]) -> None:
    """The real engines, fed straight (no Kafka): the async engine's thread pool and the
    process engine's workers (the handler pickled into them) included."""
    handler = PyCpuWorkload(SETTINGS).handler(engine)
    options = {"workers": 1, "worker_concurrency": 2} if engine == "process" else {}
    built = engine_spec(engine).create(handler, engine_config(engine, **options))
    engines.append(built)
    built.start()
    items = make_items(40, 8, values={n: make_value(n) for n in range(40)})
    built.submit(items)
    reports = collect(built, len(items))
    assert {report.outcome for report in reports.values()} == {Outcome.SUCCEEDED}


def test_service_time_is_measured_at_set_up_or_given() -> None:
    measured = PyCpuWorkload(SETTINGS)
    with pytest.raises(RuntimeError, match="set_up"):
        measured.service_time_s()
    assert measured.metadata()["pycpu_service_ms"] is None
    with measured:
        seconds = measured.service_time_s()
        assert seconds > 0
        assert measured.metadata()["pycpu_service_ms"] == pytest.approx(seconds * 1000)
        assert measured.metadata()["pycpu_service_source"] == "measured"
        assert "ms per record on one core (measured, 50 iterations" in (measured.describe() or "")
    given = PyCpuWorkload(WorkloadSettings(pycpu_iterations=50, pycpu_service_ms=0.5))
    with given:
        assert given.service_time_s() == pytest.approx(0.0005)
        assert given.metadata()["pycpu_service_source"] == "given"
    assert WORKLOADS["pycpu"].cpu_bound
    assert given.engine_options(cores=3) == WORKLOADS["cpu"](SETTINGS).engine_options(cores=3)


def test_with_the_gil_threads_count_as_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound: the async engine's threads get one core with the GIL, every core without
    (a free-threaded build, GIL off); worker processes get a core each either way."""
    shape = bounds.EngineShape(
        engine="async",
        max_in_flight=100,
        concurrency=8,
        workers=2,
        worker_concurrency=2,
        lane_cap=100,
    )
    workload = PyCpuWorkload(SETTINGS)
    monkeypatch.setattr(pycpu_module, "gil_enabled", lambda: True)
    assert not workload.releases_gil and workload.metadata()["pycpu_releases_gil"] is False
    assert shape.cpu_cores(4, workload.releases_gil) == 1
    monkeypatch.setattr(pycpu_module, "gil_enabled", lambda: False)
    assert workload.releases_gil
    assert shape.cpu_cores(4, workload.releases_gil) == 4


def test_a_record_without_a_value_fails_its_handler() -> None:
    with pytest.raises(json.JSONDecodeError):
        pycpu_sync(10, Record("t", 0, 1, b"k", None))
