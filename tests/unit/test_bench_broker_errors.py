"""Failures before any run: an unreachable broker fails fast and names the address."""

from __future__ import annotations

import socket
import time

import pytest

from bench.run_parallel_benchmark import main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_broker_fails_within_timeout(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    status = main(
        [
            "--bootstrap-servers",
            address,
            "--timeout-sec",
            "2",
            "--no-progress",
            "--json-output",
            f"{tmp_path}/r.json",
        ]
    )
    assert status == 1
    assert time.monotonic() - start < 10
    assert address in capsys.readouterr().err
