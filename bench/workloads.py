"""The per-record work of the benchmark: sleep, cpu and io, for sync and async handlers.

Handlers are module-level functions bound with functools.partial, so the process engine can
pickle them into its workers. Which flavour a mode gets:

- baseline and process workers: sync handlers (time.sleep, the SHA-256 chain, a blocking
  socket round trip);
- async: `async def` handlers for sleep (asyncio.sleep) and io (asyncio streams); for cpu a sync
  handler, which the async engine runs in its thread pool, because a coroutine would hold the
  event loop for the whole hash chain and the native kernel releases the GIL in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import cpu_kernel
from bench.io_server import REQUEST_SIZE, encode_request

PAYLOAD_SIZE = 100


def make_value(seq: int, size: int = PAYLOAD_SIZE) -> bytes:
    """The record value: the sequence number, zero-padded to `size` bytes."""
    head = b"%012d:" % seq
    return head + b"x" * max(0, size - len(head))


def make_key(seq: int, num_keys: int) -> bytes:
    return b"key-%d" % (seq % num_keys)


# --- sleep ---------------------------------------------------------------------------------


def sleep_sync(sleep_s: float, record: Any) -> None:
    time.sleep(sleep_s)


async def sleep_async(sleep_s: float, record: Any) -> None:
    await asyncio.sleep(sleep_s)


# --- cpu -----------------------------------------------------------------------------------


def cpu_kernel_implementation() -> str:
    """ "native" when the Cython kernel is built, else "python" (the hashlib fallback)."""
    return str(cpu_kernel.IMPLEMENTATION)


def cpu_sync(iterations: int, record: Any) -> None:
    cpu_kernel.sha256_chain(record.value or b"", iterations)


def measure_cpu_service_time(
    iterations: int, rounds: int = 5, round_seconds: float = 0.05
) -> float:
    """Seconds per record of the cpu workload on one core, with the bench's own payload.

    Measured at start so the bound of the cpu workload reflects this machine and this kernel.
    The best of a few short rounds is kept: on a noisy machine the fastest round is the closest
    to the kernel's real cost, and a bound must not be lowered by a neighbour's load.
    """
    chain = cpu_kernel.sha256_chain
    payload = make_value(0)
    chain(payload, iterations)  # warm up (imports, caches)
    best = float("inf")
    for _ in range(rounds):
        calls = 0
        start = time.perf_counter()
        while True:
            chain(payload, iterations)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= round_seconds and calls >= 3:
                break
        best = min(best, elapsed / calls)
    return best


# --- io ------------------------------------------------------------------------------------


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


# --- selection -----------------------------------------------------------------------------


def make_handler(
    workload: str,
    mode: str,
    *,
    sleep_ms: float,
    cpu_iterations: int,
    io_sleep_ms: float,
    io_address: tuple[str, int] | None,
) -> Callable[..., Any]:
    """The handler of `workload` for `mode` (see the module docstring for the flavours)."""
    asynchronous = mode == "async"
    if workload == "sleep":
        return functools.partial(sleep_async if asynchronous else sleep_sync, sleep_ms / 1000)
    if workload == "cpu":
        return functools.partial(cpu_sync, cpu_iterations)
    if workload == "io":
        if io_address is None:
            raise ValueError("the io workload needs the delay server's address")
        host, port = io_address
        delay_us = round(io_sleep_ms * 1000)
        return functools.partial(io_async if asynchronous else io_sync, host, port, delay_us)
    raise ValueError(f"workload must be one of sleep, cpu, io; got {workload!r}")


def service_time_s(
    workload: str, *, sleep_ms: float, io_sleep_ms: float, cpu_service_s: float | None
) -> float:
    """Time one record takes on an idle, dedicated executor (the bound's denominator)."""
    if workload == "sleep":
        return sleep_ms / 1000
    if workload == "io":
        return io_sleep_ms / 1000
    if workload == "cpu":
        if cpu_service_s is None:
            raise ValueError("cpu service time was not measured")
        return cpu_service_s
    raise ValueError(f"unknown workload {workload!r}")
