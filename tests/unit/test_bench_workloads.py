"""The workload registry: names, handlers per engine, service times, set-up and tear-down."""

from __future__ import annotations

import asyncio
import functools
import inspect
import pickle
import time

import pytest

from bench import cli, option_groups
from bench.workloads import (
    COROUTINE_ENGINES,
    WORKLOAD_NAMES,
    WORKLOADS,
    WorkloadSettings,
    workload_class,
)
from bench.workloads.base import for_each
from bench.workloads.cpu import CpuWorkload, cpu_sync, measure_cpu_service_time
from bench.workloads.io import IoWorkload, io_sync
from bench.workloads.payload import PAYLOAD_SIZE, make_key, make_value
from bench.workloads.sleep import SleepWorkload
from pyrallel_consumer.engines.registry import ENGINE_NAMES, engine_spec
from pyrallel_consumer.record import Record

SETTINGS = WorkloadSettings(sleep_ms=5, cpu_iterations=10, io_sleep_ms=2)


def test_registry_order_and_cli_choices() -> None:
    assert WORKLOAD_NAMES == ("sleep", "cpu", "pycpu", "io", "bulk")
    assert (*WORKLOAD_NAMES, "all") == option_groups.WORKLOAD_CHOICES
    assert cli.parse_args(["--workload", "all"]).workloads == ["sleep", "cpu", "io"]
    assert workload_class("io") is IoWorkload
    with pytest.raises(ValueError, match="sleep, cpu, pycpu, io, bulk; got 'disk'"):
        workload_class("disk")


def test_coroutine_engines_are_registered_and_accept_coroutines() -> None:
    for name in COROUTINE_ENGINES:
        assert engine_spec(name).accepts_coroutines


def test_handler_flavour_per_engine() -> None:
    with IoWorkload(SETTINGS, address=("127.0.0.1", 1)) as io:
        workloads = [SleepWorkload(SETTINGS), CpuWorkload(SETTINGS), io]
        for workload in workloads:
            for engine in ENGINE_NAMES:
                coroutine = inspect.iscoroutinefunction(workload.handler(engine))
                expected = engine in COROUTINE_ENGINES and workload.name != "cpu"
                assert coroutine == expected, (workload.name, engine)
            with pytest.raises(ValueError, match="engine must be one of"):
                workload.handler("threads")


def test_handlers_pickle_for_the_process_engine() -> None:
    with IoWorkload(SETTINGS, address=("127.0.0.1", 5)) as io:
        handler = pickle.loads(pickle.dumps(io.handler("process")))
    assert handler.func is io_sync and handler.args == ("127.0.0.1", 5, 2000)
    sleep = pickle.loads(pickle.dumps(SleepWorkload(SETTINGS).handler("process")))
    assert sleep.args == (0.005,)


def test_io_needs_its_server_and_records_it() -> None:
    io = IoWorkload(SETTINGS)
    with pytest.raises(RuntimeError, match="io workload needs its delay server"):
        io.handler("async")
    assert io.metadata() == {}
    with io:
        host, port = io.address
        assert io.metadata() == {"io_server": f"{host}:{port}"}
        io.handler("baseline")(Record("t", 0, 1, b"k", b"v"))  # a real round trip
    with pytest.raises(RuntimeError, match="call set_up"):
        io.handler("async")
    assert io.service_time_s() == pytest.approx(0.002)


def test_cpu_measures_its_service_time_at_set_up() -> None:
    cpu = CpuWorkload(SETTINGS)
    with pytest.raises(RuntimeError, match="set_up"):
        cpu.service_time_s()
    assert cpu.metadata()["cpu_service_ms"] is None
    with cpu:
        seconds = cpu.service_time_s()
        assert seconds > 0
        assert cpu.metadata()["cpu_service_ms"] == pytest.approx(seconds * 1000)
        assert "ms per record on one core" in (cpu.describe() or "")
    assert cpu.cpu_bound and not SleepWorkload.cpu_bound and not IoWorkload.cpu_bound
    assert cpu.engine_options(cores=3) == {"concurrency": 6, "worker_concurrency": 2}
    assert SleepWorkload(SETTINGS).engine_options(cores=3) == {}


def test_cpu_kernel_runs_and_calibrates() -> None:
    cpu_sync(100, Record("t", 0, 1, b"k", make_value(1)))
    assert measure_cpu_service_time(100, rounds=2, round_seconds=0.01) > 0


def test_payload() -> None:
    assert make_value(12)[:13] == b"000000000012:"
    assert len(make_value(1)) == PAYLOAD_SIZE
    assert make_key(205, 100) == b"key-5"


def test_sleep_service_time() -> None:
    assert WORKLOADS["sleep"](SETTINGS).service_time_s() == pytest.approx(0.005)


def test_bulk_workload_costs_a_fixed_part_plus_a_part_per_record() -> None:
    settings = WorkloadSettings(bulk_fixed_ms=5.0, bulk_per_record_ms=0.05)
    bulk = workload_class("bulk")(settings)
    assert bulk.call_time_s(100) == pytest.approx(0.010)
    assert bulk.service_time_s() == pytest.approx(0.00505)
    handler = bulk.batch_handler("baseline")
    started = time.monotonic()
    handler([object()] * 100)
    assert time.monotonic() - started >= 0.010
    assert inspect.iscoroutinefunction(bulk.batch_handler("async").func)  # type: ignore[attr-defined]


def test_per_record_workloads_run_each_record_of_a_batch() -> None:
    sleep = workload_class("sleep")(WorkloadSettings(sleep_ms=0.0))
    assert sleep.call_time_s(10) == 0.0
    calls: list[object] = []
    batch = functools.partial(for_each, calls.append)
    batch([1, 2, 3])
    assert calls == [1, 2, 3]
    asyncio.run(sleep.batch_handler("async")([object(), object()]))
