"""The loopback delay server behind the `io` workload.

Wire format (fixed size, so neither side needs framing logic): the client sends 8 bytes, a
big-endian unsigned 32-bit delay in microseconds followed by a 32-bit token; the server answers
with the same 8 bytes after the delay. Each connection carries one request at a time, so a
client that wants N concurrent waits holds N connections (the clients in bench/workloads/io.py
pool them per thread or per asyncio task).

The server is one event loop (uvloop when installed), so it handles thousands of concurrent
connections with one thread; a thread per connection would make the server itself the bottleneck
of the workload it is meant to measure. The bench runs it in a child process
(`DelayServerProcess`): in a thread of the bench process it would compete for the GIL with the
consumer being measured. `DelayServer` (a thread) is for tests and embedding.

Command line: `python -m bench.io_server [--host H] [--port N]` prints `port=N` once
listening and serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType

REQUEST = struct.Struct("!II")  # delay_us, token
REQUEST_SIZE = REQUEST.size
_BACKLOG = 4096
_BENCH_PARENT = Path(__file__).resolve().parents[1]


def encode_request(delay_us: int, token: int = 0) -> bytes:
    """The 8-byte request asking the server to answer after `delay_us` microseconds."""
    return REQUEST.pack(delay_us, token & 0xFFFFFFFF)


class DelayServer:
    """A TCP server on 127.0.0.1 that answers each request after the delay it names.

    Owned by the thread that calls start()/stop(); the event loop and every connection live in
    the server's own daemon thread. `wait(seconds)` is how a request waits (asyncio.sleep; tests
    pass their own to observe the waits instead of timing them).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        wait: Callable[[float], Awaitable[object]] = asyncio.sleep,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    ) -> None:
        self._host = host
        self._port = port
        self._wait = wait
        self._loop_factory = loop_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.requests_served = 0  # written by the server thread only

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on; valid after start()."""
        if self._server is None:
            raise RuntimeError("DelayServer is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def start(self, timeout: float = 10.0) -> DelayServer:
        self._thread = threading.Thread(target=self._run, name="bench-io-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the io delay server did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the io delay server failed to start: {self._error}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> DelayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop_factory()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, self._host, self._port, backlog=_BACKLOG)
            )
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await reader.readexactly(REQUEST_SIZE)
                delay_us, _token = REQUEST.unpack(request)
                if delay_us:
                    await self._wait(delay_us / 1_000_000)
                self.requests_served += 1  # before the reply: a client may look right after
                writer.write(request)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client closed its pooled connection: normal end
        finally:
            writer.close()


class DelayServerProcess:
    """The delay server in a child process (`python -m bench.io_server`), owned by the
    caller."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._process: subprocess.Popen[str] | None = None
        self._port: int | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._port is None:
            raise RuntimeError("DelayServerProcess is not started")
        return self._host, self._port

    def start(self, timeout: float = 15.0) -> DelayServerProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.io_server", "--host", self._host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_BENCH_PARENT,  # `bench` importable even when it is not installed
        )
        assert self._process.stdout is not None
        ready = threading.Event()
        lines: list[str] = []

        def read_first_line() -> None:
            assert self._process is not None and self._process.stdout is not None
            lines.append(self._process.stdout.readline())
            ready.set()

        threading.Thread(target=read_first_line, daemon=True).start()
        if not ready.wait(timeout) or not lines[0].startswith("port="):
            self.stop()
            raise RuntimeError("the io delay server process did not start")
        self._port = int(lines[0].strip().split("=", 1)[1])
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # the child exits when its stdin closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> DelayServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loops when installed, else asyncio's (a factory, not an event loop
    policy: policies are deprecated since Python 3.14)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.io_server",
        description="Loopback delay server of the io workload.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = DelayServer(args.host, args.port, loop_factory=_loop_factory()).start()
    print(f"port={server.address[1]}", flush=True)
    # Serve until the parent closes our stdin (or dies): no orphan servers after a crash.
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
