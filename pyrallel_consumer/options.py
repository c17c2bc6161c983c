"""The options of a ParallelConsumer, with their types and defaults, in one place.

`Options` is the one list: `ParallelConsumer.__init__` takes each of its fields as a keyword
argument whose default is read from `DEFAULTS` (so `help(ParallelConsumer)`, IDEs and type
checkers see every option, and no default is written twice), `build_config` (config.py) turns
an `Options` into the validated `ConsumerConfig`, and README.md's option table documents every
field (tests/unit/test_options.py checks all three against this class).

None means "derived" where the field says so: the value then depends on other options or on
the machine (config.py computes it and README.md's table says how).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

EngineName = Literal["baseline", "async", "process"]  # engines/registry.py's names, checked
Ordering = Literal["key", "partition", "unordered"]
OnFailure = Literal["dead_letter", "stop", "skip"]
CodecName = Literal["auto", "native", "msgpack"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """What a user may set besides `kafka_config`, `topics`, the handler and the callbacks.
    Units: `_s` fields are seconds, `_bytes` fields bytes; counts are records unless said.
    README.md's option table says what each one does."""

    engine: EngineName = "async"
    ordering: Ordering = "key"
    max_in_flight: int | None = None  # derived: window.default_max_in_flight
    max_in_flight_per_lane: int | None = None  # derived: window.default_lane_cap
    backlog_size: int = 50_000
    backlog_max_bytes: int = 64 * 1024 * 1024
    concurrency: int | None = None  # derived: the async engine's, per handler kind
    workers: int | None = None  # derived: the cores this process may use
    worker_concurrency: int | None = None  # derived: 16
    ipc_batch_size: int = 256
    ipc_batch_max_wait_s: float = 0.002
    batch_size: int | None = None  # None: the handler takes one record; N: lists of up to N
    batch_max_wait_s: float = 0.1
    retries: int = 3
    retry_backoff_s: float = 0.1
    retry_backoff_max_s: float = 10.0
    on_failure: OnFailure | None = None  # derived: "dead_letter" with dlq_topic, else "stop"
    dlq_topic: str | None = None
    dlq_producer_config: Mapping[str, Any] | None = None  # None: derived from kafka_config
    commit_interval_s: float = 1.0
    drain_timeout_s: float = 30.0
    revoke_grace_s: float = 10.0
    poll_batch_size: int = 500
    codec: CodecName | None = None  # derived: PYRALLEL_CODEC, else "auto"
    tracing: bool = False  # OpenTelemetry spans per handler call (tracing.py); needs the extra
    outputs: bool = False  # the handler's return value is records to produce (output.py)
    output_producer_config: Mapping[str, Any] | None = None  # None: derived from kafka_config
    transactional_id: str | None = None  # exactly once: outputs and offsets in transactions


DEFAULTS = Options()


def option_names() -> tuple[str, ...]:
    """The names of `Options`' fields, in declaration order."""
    return tuple(field.name for field in fields(Options))
