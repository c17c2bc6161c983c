"""Failures before any run: a dead broker fails at once, naming the address, and quietly."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench.run_parallel_benchmark import EXIT_INCOMPLETE, main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_broker_fails_naming_the_address_without_librdkafka_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    output = tmp_path / "r.json"
    status = main(
        [
            "--bootstrap-servers",
            address,
            "--no-progress",
            "--json-output",
            str(output),
        ]
    )
    assert status == EXIT_INCOMPLETE
    err = capsys.readouterr().err
    # Connection refused on every bootstrap address is final: one clear line, no retry log.
    assert f"cannot reach a Kafka broker at {address}" in err
    assert "refused" in err
    assert len(err.strip().splitlines()) == 1
    assert not output.exists()  # nothing ran, so there are no results to write
