"""The loopback delay server and the io workload's clients (sync and async).

The server's wait is replaced by a gate that records each requested delay and holds every wait
until a whole group of them is pending at once: a server or client that handled requests one at
a time would never fill the group (the gate's limit then fails the test). No wall-clock asserts.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from bench.io_server import REQUEST_SIZE, DelayServer, DelayServerProcess, encode_request
from bench.workloads import io
from pyrallel_consumer.record import Record

GATE_LIMIT_S = 30.0  # a failure guard only: a healthy gate opens as soon as its group is in


class GatedWait:
    """Stands in for asyncio.sleep in the server's event loop (its only user)."""

    def __init__(self, group: int = 1) -> None:
        self.group = group
        self.delays: list[float] = []
        self.peak = 0
        self._pending = 0
        self._open: asyncio.Event | None = None

    async def __call__(self, seconds: float) -> None:
        if self._open is None:
            self._open = asyncio.Event()
        self.delays.append(seconds)
        self._pending += 1
        self.peak = max(self.peak, self._pending)
        if self._pending == self.group:
            self._open.set()
        await asyncio.wait_for(self._open.wait(), GATE_LIMIT_S)
        self._pending -= 1
        if self._pending == 0:
            self._open.clear()  # the next group waits for its own members


def _record(offset: int = 7) -> Record:
    return Record("t", 0, offset, b"k", b"v")


def _round_trip(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address) as sock:
        sock.sendall(request)
        reply = b""
        while len(reply) < REQUEST_SIZE:
            reply += sock.recv(REQUEST_SIZE)
    return reply


def test_reply_comes_after_the_requested_wait() -> None:
    wait = GatedWait()
    with DelayServer(wait=wait) as server:
        request = encode_request(30_000, 42)
        assert _round_trip(server.address, request) == request
        assert _round_trip(server.address, encode_request(0, 1)) == encode_request(0, 1)
        assert server.requests_served == 2
    assert wait.delays == [0.03]  # a zero delay answers at once


def test_sync_client_reuses_its_connection_per_thread() -> None:
    wait = GatedWait()
    with DelayServer(wait=wait) as server:
        host, port = server.address
        for offset in range(5):
            io.io_sync(host, port, 10_000, _record(offset))
        assert server.requests_served == 5
        assert len([k for k in io._sync_connections.by_address if k[2] == port]) == 1
    assert wait.delays == [0.01] * 5


def test_many_concurrent_sync_clients_wait_in_parallel() -> None:
    wait = GatedWait(group=50)
    errors: list[BaseException] = []

    def client(offset: int) -> None:
        try:
            io.io_sync(host, port, 100_000, _record(offset))
        except BaseException as exc:
            errors.append(exc)

    with DelayServer(wait=wait) as server:
        host, port = server.address
        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert server.requests_served == 50
    assert wait.peak == 50  # all 50 waits were pending at once


def test_async_client_pools_connections() -> None:
    wait = GatedWait(group=200)
    with DelayServer(wait=wait) as server:
        host, port = server.address

        async def burst() -> None:
            await asyncio.gather(*(io.io_async(host, port, 50_000, _record(i)) for i in range(200)))

        async def main() -> tuple[int, int]:
            await burst()
            pool = io._async_pool(host, port)
            size = len(pool.idle)
            await burst()
            return size, len(pool.idle)

        first_size, second_size = asyncio.run(main())
        io.close_async_connections()
        assert server.requests_served == 400
    assert first_size == 200  # one connection per concurrent request
    assert second_size == first_size  # the second burst reused them
    assert wait.peak == 200


def test_server_process_round_trip_and_clean_stop() -> None:
    server = DelayServerProcess().start()
    try:
        host, port = server.address
        io.io_sync(host, port, 1_000, _record())
    finally:
        process = server._process
        server.stop()
    assert process is not None and process.returncode == 0
