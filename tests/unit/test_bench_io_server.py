"""The loopback delay server and the io workload clients (sync and async)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from bench import workloads
from bench.io_server import REQUEST_SIZE, DelayServer, encode_request
from pyrallel_consumer.record import Record


def _record(offset: int = 7) -> Record:
    return Record("t", 0, offset, b"k", b"v")


def test_round_trip_really_waits() -> None:
    with DelayServer() as server:
        host, port = server.address
        with socket.create_connection((host, port)) as sock:
            request = encode_request(30_000, 42)
            start = time.monotonic()
            sock.sendall(request)
            reply = b""
            while len(reply) < REQUEST_SIZE:
                reply += sock.recv(REQUEST_SIZE)
            elapsed = time.monotonic() - start
    assert reply == request
    assert elapsed >= 0.029


def test_sync_client_reuses_its_connection_per_thread() -> None:
    with DelayServer() as server:
        host, port = server.address
        start = time.monotonic()
        for offset in range(5):
            workloads.io_sync(host, port, 10_000, _record(offset))
        assert time.monotonic() - start >= 0.049
        assert server.requests_served == 5
        assert len([k for k in workloads._sync_connections.by_address if k[2] == port]) == 1


def test_many_concurrent_sync_clients_wait_in_parallel() -> None:
    with DelayServer() as server:
        host, port = server.address
        threads = [
            threading.Thread(target=workloads.io_sync, args=(host, port, 100_000, _record(i)))
            for i in range(50)
        ]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
    # 50 waits of 100 ms overlap: far less than the 5 s they would take one after another
    assert 0.099 <= elapsed < 2.0
    assert server.requests_served == 50


def test_async_client_pools_connections() -> None:
    with DelayServer() as server:
        host, port = server.address

        async def burst() -> float:
            start = time.monotonic()
            await asyncio.gather(
                *(workloads.io_async(host, port, 50_000, _record(i)) for i in range(200))
            )
            return time.monotonic() - start

        async def main() -> tuple[float, float, int]:
            first = await burst()
            pool = workloads._async_pool(host, port)
            size = len(pool.idle)
            second = await burst()
            assert len(pool.idle) == size  # the second burst reused the pooled connections
            return first, second, size

        first, second, size = asyncio.run(main())
        workloads.close_async_connections()
    assert size == 200
    assert 0.049 <= second < 2.0 and first >= 0.049
    assert server.requests_served == 400


def test_handlers_by_mode() -> None:
    import inspect

    kwargs = dict(sleep_ms=1, cpu_iterations=10, io_sleep_ms=1, io_address=("127.0.0.1", 1))
    assert inspect.iscoroutinefunction(workloads.make_handler("sleep", "async", **kwargs))
    assert inspect.iscoroutinefunction(workloads.make_handler("io", "async", **kwargs))
    assert not inspect.iscoroutinefunction(workloads.make_handler("cpu", "async", **kwargs))
    for mode in ("baseline", "process"):
        for workload in ("sleep", "cpu", "io"):
            handler = workloads.make_handler(workload, mode, **kwargs)
            assert not inspect.iscoroutinefunction(handler)
    with pytest.raises(ValueError, match="io workload"):
        workloads.make_handler(
            "io", "async", sleep_ms=1, cpu_iterations=1, io_sleep_ms=1, io_address=None
        )


def test_handlers_pickle_for_the_process_engine() -> None:
    import pickle

    handler = workloads.make_handler(
        "io", "process", sleep_ms=1, cpu_iterations=10, io_sleep_ms=1, io_address=("127.0.0.1", 5)
    )
    assert pickle.loads(pickle.dumps(handler)).args == ("127.0.0.1", 5, 1000)


def test_cpu_handler_and_service_time() -> None:
    workloads.cpu_sync(100, _record())
    seconds = workloads.measure_cpu_service_time(100, rounds=2, round_seconds=0.01)
    assert 0 < seconds < 0.1
    assert workloads.service_time_s("sleep", sleep_ms=5, io_sleep_ms=1, cpu_service_s=None) == 0.005
    assert workloads.make_value(12)[:13] == b"000000000012:"
    assert len(workloads.make_value(1)) == workloads.PAYLOAD_SIZE


def test_server_process_round_trip_and_clean_stop() -> None:
    from bench.io_server import DelayServerProcess

    server = DelayServerProcess().start()
    try:
        host, port = server.address
        start = time.monotonic()
        workloads.io_sync(host, port, 20_000, _record())
        assert time.monotonic() - start >= 0.019
    finally:
        process = server._process
        server.stop()
    assert process is not None and process.returncode == 0
