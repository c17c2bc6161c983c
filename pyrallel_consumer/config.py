"""Options of a ParallelConsumer, validated when the object is built (before anything connects).

Threads: a ConsumerConfig (and its RetryPolicy) is frozen once built, so every thread reads it
without a lock, and process workers get a pickled copy.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from pyrallel_consumer import kafka_settings
from pyrallel_consumer.engines.registry import (
    ENGINE_NAMES,
    ENGINE_OPTIONS,
    engine_spec,
    engines_where,
)
from pyrallel_consumer.options import (
    DEFAULTS,
    CodecName,
    OnFailure,
    Options,
    Ordering,
    option_names,
)
from pyrallel_consumer.redact import redact
from pyrallel_consumer.window import default_lane_cap, default_max_in_flight

ORDERINGS: tuple[str, ...] = get_args(Ordering)
ON_FAILURE: tuple[str, ...] = get_args(OnFailure)
CODECS: tuple[str, ...] = get_args(CodecName)

# librdkafka settings the consumer owns: offsets are stored and committed by the control plane only.
_FORCED_KAFKA_SETTINGS = {"enable.auto.commit": False, "enable.auto.offset.store": False}
# librdkafka settings whose defaults starve a consumer that handles records slower than it
# fetches them; each stays the user's to set. fetch.queue.backoff.ms: once the local queue holds
# queued.min.messages (100,000) or queued.max.messages.kbytes, librdkafka postpones the next
# fetch by this long, 1,000 ms by default (librdkafka 2.3+ CONFIGURATION.md), and a consumer
# that drains the queue in less finds it empty for the rest: measured, 200,000 queued records
# read in 1.29 s with a 0.5 s stall (python -m bench.overhead, baseline), 0.75 s with 10 ms.
_DEFAULT_KAFKA_SETTINGS = {"fetch.queue.backoff.ms": 10}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of a failing handler call: exponential backoff, capped, with jitter.

    Retry n waits `base = min(backoff_max_s, backoff_initial_s * 2**(n-1))` scaled by a uniform
    draw from [1 - jitter, 1]: with the default `jitter` of 0.5, between half and all of
    `base` ("equal jitter" in AWS's Exponential Backoff And Jitter article, which calls the
    [0, 1] draw "full jitter"). Half the delay stays fixed so a retry never fires at once,
    the other half spreads out records that failed together."""

    retries: int = 3
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0
    jitter: float = 0.5  # fraction of each delay that is random (0: none, 1: full jitter)

    def delay(self, attempt: int, rand: float) -> float:
        """Delay before retry number `attempt` (1-based); `rand` is uniform in [0, 1)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (attempt - 1))
        return base * (1.0 - self.jitter * rand)


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything a ParallelConsumer needs besides the handler, validated in `build`."""

    kafka_config: dict[str, Any]
    topics: tuple[str, ...]
    engine: str  # a name in engines.registry.ENGINES
    ordering: Ordering
    max_in_flight: int
    max_in_flight_per_lane: int
    backlog_size: int
    backlog_max_bytes: int
    concurrency: int | None
    workers: int
    worker_concurrency: int
    ipc_batch_size: int
    ipc_batch_max_wait_s: float
    batch_size: int | None  # None: the handler takes one record; N: a list of up to N
    batch_max_wait_s: float
    retry: RetryPolicy
    on_failure: OnFailure
    dlq_topic: str | None
    commit_interval_s: float
    drain_timeout_s: float
    revoke_grace_s: float
    poll_batch_size: int
    codec: str
    # The dead-letter producer's settings given explicitly (None: derived from kafka_config).
    dlq_producer_config: dict[str, Any] | None = None
    tracing: bool = False  # a span per handler call (tracing.py)
    # Consume-transform-produce: the handler's return value is its outputs (output.py).
    outputs: bool = False
    # The output producer's settings given explicitly (None: derived from kafka_config).
    output_producer_config: dict[str, Any] | None = None
    # Exactly once: the output producer's transactional.id (None: at least once).
    transactional_id: str | None = None

    def __repr__(self) -> str:
        # Secret settings (passwords, keys, callables) never reach a log line or a traceback.
        fields = ", ".join(
            f"{name}={redact(value) if isinstance(value, dict) else value!r}"
            for name, value in ((name, getattr(self, name)) for name in self.__dataclass_fields__)
        )
        return f"ConsumerConfig({fields})"

    @property
    def group_id(self) -> str:
        return str(self.kafka_config["group.id"])

    @property
    def cooperative(self) -> bool:
        strategy = str(self.kafka_config.get("partition.assignment.strategy", ""))
        return "cooperative" in strategy


def usable_cores() -> int:
    """CPUs this process may run on: the affinity mask (a container's cpuset), not the host's
    count that os.cpu_count() reports."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _require_float(name: str, value: object, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


def _require_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return str(value)


def _validate_kafka_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(kafka_config, Mapping):
        raise TypeError(
            f"kafka_config must be a dict of librdkafka settings, got {type(kafka_config).__name__}"
        )
    config = dict(kafka_config)
    for required in ("bootstrap.servers", "group.id"):
        if not config.get(required):
            raise ValueError(f"kafka_config needs {required!r} (e.g. {{{required!r}: ...}})")
    for key, forced in _FORCED_KAFKA_SETTINGS.items():
        given = config.get(key, forced)
        if str(given).lower() not in (str(forced).lower(),):
            raise ValueError(
                f"kafka_config {key!r} must be {forced!r}: ParallelConsumer stores and commits "
                "offsets itself, only after records complete; remove the setting"
            )
        config[key] = forced
    for key, default in _DEFAULT_KAFKA_SETTINGS.items():
        config.setdefault(key, default)
    if "on_commit" in config:
        raise ValueError("kafka_config 'on_commit' is not supported: use stats() for commits")
    kafka_settings.check(config)
    return config


def build_config(
    kafka_config: Mapping[str, Any], *, topics: Sequence[str], **options: Any
) -> ConsumerConfig:
    """`config_from` with the options by name (`Options`' fields; the rest keep their
    defaults). Raises TypeError for a name that is not an option, naming the closest."""
    check_option_names(options)
    return config_from(kafka_config, topics, Options(**options))


def check_option_names(given: Iterable[str], also: Sequence[str] = ()) -> None:
    """Raise TypeError for the first name of `given` that is neither an option nor in `also`,
    with the closest known name and the list of all of them."""
    known = [*also, *option_names()]
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"ParallelConsumer() got an unexpected option {name!r}{hint} "
                f"(options: {', '.join(known)}; see README)"
            )


def config_from(
    kafka_config: Mapping[str, Any], topics: Sequence[str], options: Options
) -> ConsumerConfig:
    """Validate `kafka_config`, `topics` and every option, derive the options left to None
    (options.py), and return the frozen config. Raises ValueError for a bad value and
    TypeError for a wrong type, each naming the option and what it accepts."""
    kafka = _validate_kafka_config(kafka_config)
    if isinstance(topics, str) or not isinstance(topics, Sequence) or not topics:
        raise ValueError("topics must be a non-empty list of topic names, e.g. topics=['orders']")
    for topic in topics:
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topics must hold non-empty strings, got {topic!r}")
    o = options
    engine = _require_choice("engine", o.engine, ENGINE_NAMES)
    _check_engine_options(engine, o)
    batch_size = o.batch_size
    if batch_size is not None:
        batch_size = _require_int("batch_size", batch_size, 1)
    max_in_flight = _require_int(
        "max_in_flight",
        default_max_in_flight(batch_size) if o.max_in_flight is None else o.max_in_flight,
        1,
    )
    if batch_size is not None and batch_size > max_in_flight:
        raise ValueError(
            f"batch_size ({batch_size}) must be <= max_in_flight ({max_in_flight}): a batch "
            "is made of records in flight; raise max_in_flight or lower batch_size"
        )
    lane_cap = o.max_in_flight_per_lane
    if lane_cap is None:
        lane_cap = default_lane_cap(max_in_flight, batch_size)
    dlq_topic = o.dlq_topic
    if dlq_topic is not None and (not isinstance(dlq_topic, str) or not dlq_topic):
        raise ValueError(f"dlq_topic must be a non-empty topic name or None, got {dlq_topic!r}")
    on_failure = _require_choice(
        "on_failure",
        o.on_failure if o.on_failure is not None else "dead_letter" if dlq_topic else "stop",
        ON_FAILURE,
    )
    if on_failure == "dead_letter" and not dlq_topic:
        raise ValueError("on_failure='dead_letter' needs dlq_topic='<topic name>'")
    if on_failure != "dead_letter" and dlq_topic:
        raise ValueError(
            f"dlq_topic is used only with on_failure='dead_letter', not {on_failure!r}, which "
            "never writes a dead letter: drop dlq_topic, or drop on_failure (it then defaults "
            "to 'dead_letter')"
        )
    if dlq_topic in topics:
        raise ValueError(f"dlq_topic {dlq_topic!r} must differ from the consumed topics")
    # None: the async engine picks per handler kind (engines/asyncio_engine.py).
    concurrency = None if o.concurrency is None else _require_int("concurrency", o.concurrency, 1)
    workers = usable_cores() if o.workers is None else o.workers
    worker_concurrency = 16 if o.worker_concurrency is None else o.worker_concurrency
    codec = o.codec if o.codec is not None else os.environ.get("PYRALLEL_CODEC", "auto")
    return ConsumerConfig(
        kafka_config=kafka,
        topics=tuple(topics),
        engine=engine,
        ordering=_require_choice("ordering", o.ordering, ORDERINGS),  # type: ignore[arg-type]
        max_in_flight=max_in_flight,
        max_in_flight_per_lane=_require_int("max_in_flight_per_lane", lane_cap, 1),
        # The backlog: records held beyond max_in_flight, so the in-flight window can be
        # spread over many keys.
        backlog_size=_require_int("backlog_size", o.backlog_size, 0),
        backlog_max_bytes=_require_int("backlog_max_bytes", o.backlog_max_bytes, 1),
        concurrency=concurrency,
        workers=_require_int("workers", workers, 1),
        worker_concurrency=_require_int("worker_concurrency", worker_concurrency, 1),
        ipc_batch_size=_require_int("ipc_batch_size", o.ipc_batch_size, 1),
        ipc_batch_max_wait_s=_require_float("ipc_batch_max_wait_s", o.ipc_batch_max_wait_s, 0.0),
        batch_size=batch_size,
        batch_max_wait_s=_require_float("batch_max_wait_s", o.batch_max_wait_s, 0.0),
        retry=RetryPolicy(
            retries=_require_int("retries", o.retries, 0),
            backoff_initial_s=_require_float("retry_backoff_s", o.retry_backoff_s, 0.0),
            backoff_max_s=_require_float("retry_backoff_max_s", o.retry_backoff_max_s, 0.0),
        ),
        on_failure=on_failure,  # type: ignore[arg-type]
        dlq_topic=dlq_topic,
        commit_interval_s=_require_float("commit_interval_s", o.commit_interval_s, 0.0),
        drain_timeout_s=_require_float("drain_timeout_s", o.drain_timeout_s, 0.0),
        revoke_grace_s=_require_float("revoke_grace_s", o.revoke_grace_s, 0.0),
        poll_batch_size=_require_int("poll_batch_size", o.poll_batch_size, 1),
        codec=_require_choice("codec", codec, CODECS),
        dlq_producer_config=_validate_producer_config(o.dlq_producer_config, dlq_topic),
        tracing=_validate_tracing(o.tracing),
        outputs=_require_bool("outputs", o.outputs),
        output_producer_config=_validate_output_producer(o.output_producer_config, o.outputs),
        transactional_id=kafka_settings.check_transactional_id(
            o.transactional_id,
            kafka,
            o.output_producer_config,
            o.dlq_producer_config,
            o.commit_interval_s,
            o.revoke_grace_s,
        ),
    )


def _check_engine_options(engine: str, options: Options) -> None:
    """Raise ValueError for an option of another engine (engines/registry.py's
    ENGINE_OPTIONS) set to other than its default: `engine` would ignore it."""
    reads = engine_spec(engine).options
    for name, sets in ENGINE_OPTIONS.items():
        value = getattr(options, name)
        if name in reads or value == getattr(DEFAULTS, name):
            continue
        takes = engines_where(lambda spec: name in spec.options)  # noqa: B023  # called here
        raise ValueError(
            f"{name}={value!r} sets {sets}; engine={engine!r} does not read it: drop "
            f"{name}, or use engine={takes}"
        )


def _validate_tracing(tracing: object) -> bool:
    """`tracing`, checked: a bool, and True only where opentelemetry-api can be imported (the
    import happens here, so a missing extra fails when the consumer is built, not at its first
    record)."""
    if not isinstance(tracing, bool):
        raise TypeError(f"tracing must be True or False, got {type(tracing).__name__}")
    if tracing:
        try:
            import opentelemetry.trace  # noqa: F401  # the optional extra
        except ImportError:
            raise ValueError(
                "tracing=True needs opentelemetry-api: pip install 'pyrallel-consumer[tracing]'"
            ) from None
    return tracing


def _require_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return value


def _validate_producer_config(
    producer: Mapping[str, Any] | None, dlq_topic: str | None
) -> dict[str, Any] | None:
    if producer is not None and not dlq_topic:
        raise ValueError("dlq_producer_config is for the dead-letter producer: set dlq_topic too")
    return _checked_producer(producer, "dlq_producer_config")


def _validate_output_producer(
    producer: Mapping[str, Any] | None, outputs: object
) -> dict[str, Any] | None:
    if producer is not None and outputs is not True:
        raise ValueError(
            "output_producer_config is for the producer of the handler's outputs: set "
            "outputs=True too"
        )
    config = _checked_producer(producer, "output_producer_config")
    if config is not None and config.get("enable.idempotence") in (False, "false"):
        raise ValueError(
            "output_producer_config: enable.idempotence must stay true: without it a retry "
            "inside librdkafka can reorder or duplicate a key's outputs"
        )
    return config


def _checked_producer(producer: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    """A producer's explicit settings, checked: a mapping with bootstrap.servers that
    librdkafka accepts. They replace the settings derived from kafka_config."""
    if producer is None:
        return None
    if not isinstance(producer, Mapping):
        raise TypeError(
            f"{name} must be a dict of librdkafka producer settings, got {type(producer).__name__}"
        )
    config = dict(producer)
    if not config.get("bootstrap.servers"):
        raise ValueError(
            f"{name} needs 'bootstrap.servers' (it replaces the settings derived from kafka_config)"
        )
    kafka_settings.check(config, name)
    return config
