"""`python -m bench.broker`: a broker in the foreground (the contract other tools rely on).

    python -m bench.broker --kind kafka|tansu [--port N] [--data-dir D] [--sasl-user U:P ...]

prints exactly one line ``bootstrap.servers=HOST:PORT`` on stdout once the broker answers a
metadata request (with ``--sasl-user``, the SASL_PLAINTEXT listener's address goes to stderr),
then runs until SIGINT/SIGTERM and shuts the broker down. Exit status: 0 after a clean stop, 1
when the broker exited on its own, 2 when it could not be started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bench.broker.kafka import SaslListener
from bench.broker.launch import DEFAULT_READY_TIMEOUT_S, KINDS, start_broker
from bench.broker.supervise import BrokerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.broker",
        description=(
            "Run a local Kafka-protocol broker in the foreground. Prints one line "
            "'bootstrap.servers=HOST:PORT' when it is ready; stops on SIGINT/SIGTERM."
        ),
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default=None,
        help="kafka: Apache Kafka 4 (Java 17 + Maven); tansu: no JVM, memory storage, "
        "with known differences (see the package docs). Default: kafka when Java 17 and "
        "Maven (or cached jars) are available, else tansu.",
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: a free one)")
    parser.add_argument(
        "--data-dir", default=None, help="kafka only: keep storage and log here across runs"
    )
    parser.add_argument(
        "--sasl-user",
        metavar="NAME:PASSWORD",
        type=_sasl_user,
        action="append",
        default=[],
        help="kafka only: add a SASL_PLAINTEXT listener (PLAIN with these users, and "
        "OAUTHBEARER with unsigned tokens: for tests only); repeatable",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT_S,
        help="seconds to wait for the broker to answer (default: %(default)s)",
    )
    return parser


def _sasl_user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text.split(':')[0]!r}:...")
    return name, password


class _StopDuringStartup(Exception):
    """SIGINT/SIGTERM arrived before the broker was ready."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    # While starting, a signal aborts the start (start_broker stops what it spawned); once
    # ready, it only sets an event so the shutdown below runs outside the signal handler.
    def abort_startup(signum: int, _frame: object) -> None:
        raise _StopDuringStartup(signum)

    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop_requested.set()

    _set_stop_handlers(abort_startup)
    try:
        broker = start_broker(
            args.kind,
            args.port,
            args.data_dir,
            ready_timeout=args.ready_timeout,
            sasl=SaslListener(dict(args.sasl_user)) if args.sasl_user else None,
        )
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _StopDuringStartup:
        return 0
    with broker:
        _set_stop_handlers(request_stop)
        print(f"bootstrap.servers={broker.bootstrap_servers}", flush=True)
        print(f"{broker.version} ready; log: {broker.log_path}", file=sys.stderr, flush=True)
        if broker.sasl_bootstrap_servers is not None:
            print(f"SASL_PLAINTEXT listener: {broker.sasl_bootstrap_servers}", file=sys.stderr)
        while not stop_requested.wait(0.5):
            if not broker.is_running():
                print(
                    f"error: the broker exited unexpectedly; log: {broker.log_path}\n"
                    f"{broker.log_tail()}",
                    file=sys.stderr,
                )
                return 1
    return 0


def _set_stop_handlers(handler: Callable[[int, Any], None]) -> None:
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
