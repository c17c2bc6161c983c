"""The `io` workload: each record makes a round trip to a loopback delay server
(bench/io_server.py) that answers after `--worker-io-sleep-ms`.

Blocking sockets in baseline, process workers and the async engine's thread pool; asyncio
streams on the engines that run coroutines. Connections are pooled per thread (sync) or per
event loop (async), so a run measures waiting, not connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import threading
from typing import Any

from bench.io_server import REQUEST_SIZE, DelayServerProcess, encode_request
from bench.workloads.base import Handler, Workload, WorkloadSettings, wants_coroutine


class _SyncConnections(threading.local):
    """One blocking connection per thread (and per process: a forked child must not share its
    parent's socket, so the owning pid is part of the key)."""

    def __init__(self) -> None:
        self.by_address: dict[tuple[int, str, int], socket.socket] = {}


_sync_connections = _SyncConnections()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("io delay server closed the connection")
        chunks += chunk
    return bytes(chunks)


def _sync_connection(host: str, port: int) -> socket.socket:
    key = (os.getpid(), host, port)
    sock = _sync_connections.by_address.get(key)
    if sock is None:
        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _sync_connections.by_address[key] = sock
    return sock


def io_sync(host: str, port: int, delay_us: int, record: Any) -> None:
    """A blocking round trip to the delay server on this thread's pooled connection."""
    sock = _sync_connection(host, port)
    request = encode_request(delay_us, record.offset)
    try:
        sock.sendall(request)
        reply = _recv_exactly(sock, REQUEST_SIZE)
    except OSError:
        # Drop the broken connection so the next record (or the engine's retry) reconnects.
        _sync_connections.by_address.pop((os.getpid(), host, port), None)
        sock.close()
        raise
    if reply != request:
        raise ConnectionError("io delay server answered with a different request")


class _AsyncPool:
    """Idle stream connections of one event loop; a task takes one per request and returns it,
    so the pool grows to the number of concurrent requests and then stays put."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []


_async_pools: dict[tuple[int, int, str, int], _AsyncPool] = {}


def _async_pool(host: str, port: int) -> _AsyncPool:
    loop = asyncio.get_running_loop()
    key = (os.getpid(), id(loop), host, port)
    pool = _async_pools.get(key)
    if pool is None or pool.loop is not loop:  # a new loop may reuse a dead loop's id
        pool = _async_pools[key] = _AsyncPool(loop)
    return pool


async def io_async(host: str, port: int, delay_us: int, record: Any) -> None:
    """A non-blocking round trip to the delay server over asyncio streams."""
    pool = _async_pool(host, port)
    if pool.idle:
        reader, writer = pool.idle.pop()
    else:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = encode_request(delay_us, record.offset)
    try:
        writer.write(request)
        reply = await reader.readexactly(REQUEST_SIZE)
    except BaseException:
        writer.close()  # never return a connection in an unknown state to the pool
        raise
    pool.idle.append((reader, writer))
    if reply != request:
        raise ConnectionError("io delay server answered with a different request")


def close_async_connections() -> None:
    """Forget pooled async connections (their loops are gone after a run)."""
    for pool in _async_pools.values():
        for _reader, writer in pool.idle:
            # With the loop closed the transport cannot close itself any more; dropping the
            # reference lets the garbage collector close the socket (closing its fd here
            # behind the transport's back could later close an unrelated reused fd).
            if not pool.loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    writer.close()
    _async_pools.clear()


class IoWorkload(Workload):
    """set_up() starts the delay server in a child process (in a thread of the bench it would
    compete for the GIL with the consumer being measured), unless `address` names a running
    one; tear_down() stops it."""

    name = "io"
    summary = "round trip to a loopback server answering after --worker-io-sleep-ms"

    def __init__(
        self, settings: WorkloadSettings, *, address: tuple[str, int] | None = None
    ) -> None:
        super().__init__(settings)
        self._address = address
        self._server: DelayServerProcess | None = None

    def set_up(self) -> None:
        if self._address is None:
            self._server = DelayServerProcess().start()
            self._address = self._server.address

    def tear_down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            self._address = None
        close_async_connections()

    def after_run(self) -> None:
        close_async_connections()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the delay server; RuntimeError before set_up()."""
        if self._address is None:
            raise RuntimeError("the io workload needs its delay server: call set_up() first")
        return self._address

    def handler(self, engine: str) -> Handler:
        host, port = self.address
        delay_us = round(self.settings.io_sleep_ms * 1000)
        function = io_async if wants_coroutine(engine) else io_sync
        return functools.partial(function, host, port, delay_us)

    def service_time_s(self) -> float:
        return self.settings.io_sleep_ms / 1000

    def metadata(self) -> dict[str, Any]:
        if self._server is None:
            return {}
        host, port = self._server.address
        return {"io_server": f"{host}:{port}"}
