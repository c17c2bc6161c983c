"""Failures before any run: an unreachable broker fails with the address and the limit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench.run_parallel_benchmark import EXIT_INCOMPLETE, main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_broker_fails_naming_the_address_and_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    output = tmp_path / "r.json"
    status = main(
        [
            "--bootstrap-servers",
            address,
            "--timeout-sec",
            "2",
            "--no-progress",
            "--json-output",
            str(output),
        ]
    )
    assert status == EXIT_INCOMPLETE
    err = capsys.readouterr().err
    # The error names what failed and the limit it gave up at (--timeout-sec), not a hang.
    assert f"cannot reach a Kafka broker at {address} within 2 s" in err
    assert not output.exists()  # nothing ran, so there are no results to write
