"""Start a broker of either kind and wait until it answers; pick the default kind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.broker import java as java_runtime
from bench.broker.jars import jars_cached, kafka_jar_dir, kafka_version
from bench.broker.kafka import KIND_KAFKA, SaslListener, start_kafka
from bench.broker.supervise import (
    LIVE_HANDLES,
    BrokerError,
    BrokerHandle,
    check_port_free,
    wait_until_ready,
)
from bench.broker.tansu import KIND_TANSU, start_tansu, tansu_binary, tansu_version

KINDS = (KIND_KAFKA, KIND_TANSU)
DEFAULT_READY_TIMEOUT_S = 90.0


def start_broker(
    kind: str | None = None,
    port: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    sasl: SaslListener | None = None,
) -> BrokerHandle:
    """Start a broker and return once it answers a metadata request.

    ``kind`` is ``"kafka"`` or ``"tansu"`` (None: :func:`resolve_default_kind`). ``port`` None
    picks a free loopback port. ``data_dir`` keeps Kafka's storage (and its log) across runs;
    tansu only has memory storage. ``sasl`` (Kafka only) adds a SASL_PLAINTEXT listener
    (``handle.sasl_bootstrap_servers``). Raises :class:`BrokerError` with a remedy on any failure.
    """
    kind = kind or resolve_default_kind()
    if kind not in KINDS:
        raise BrokerError(f"unknown broker kind {kind!r}: use one of {', '.join(KINDS)}")
    if port is not None:
        check_port_free(port)
    if kind == KIND_KAFKA:
        handle = start_kafka(port, Path(data_dir) if data_dir is not None else None, sasl)
    else:
        if sasl is not None:
            raise BrokerError("a SASL listener needs --kind kafka (tansu has no SASL)")
        if data_dir is not None:
            raise BrokerError(
                "tansu runs with memory storage only, so --data-dir does not apply: "
                "drop --data-dir, or use --kind kafka to keep data on disk"
            )
        handle = start_tansu(port)
    LIVE_HANDLES.add(handle)
    try:
        wait_until_ready(handle, ready_timeout)
    except BrokerError:
        # Keep the log (its path is in the error message) but not the process or its data.
        cleanup, handle.cleanup_dir = handle.cleanup_dir, None
        handle.stop(timeout=10.0)
        if cleanup is not None:
            shutil.rmtree(cleanup / "data", ignore_errors=True)
        raise
    except BaseException:  # interrupted: leave nothing behind
        handle.stop(timeout=10.0)
        raise
    return handle


def resolve_default_kind() -> str:
    """``"kafka"`` when Java 17+ is usable and the jars are cached or Maven can fetch them."""
    try:
        java_runtime.find_java()
    except BrokerError:
        return KIND_TANSU
    if jars_cached(kafka_jar_dir()) or shutil.which("mvn"):
        return KIND_KAFKA
    return KIND_TANSU


def broker_version(kind: str) -> str:
    """Version string of a broker kind, without starting it (``"Apache Kafka 4.1.1"``)."""
    if kind == KIND_KAFKA:
        return f"Apache Kafka {kafka_version()}"
    if kind == KIND_TANSU:
        return tansu_version(tansu_binary())
    raise BrokerError(f"unknown broker kind {kind!r}: use one of {', '.join(KINDS)}")
