"""Configuration is validated when the object is built; errors name the option."""

from __future__ import annotations

from typing import Any

import pytest

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.config import build_config
from pyrallel_consumer.options import DEFAULTS

KAFKA = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}


def handler(record: Any) -> None:
    pass


async def async_handler(record: Any) -> None:
    pass


def build(**overrides: Any) -> Any:
    options: dict[str, Any] = {"topics": ["t"]}
    options.update(overrides)
    kafka = options.pop("kafka_config", KAFKA)
    return build_config(kafka, **options)


def test_fetch_backoff_defaults_low_and_stays_the_users_to_set() -> None:
    # librdkafka's 1,000 ms default starved the loop for half a second per queue refill.
    assert build().kafka_config["fetch.queue.backoff.ms"] == 10
    given = build(kafka_config={**KAFKA, "fetch.queue.backoff.ms": 250})
    assert given.kafka_config["fetch.queue.backoff.ms"] == 250


def test_defaults() -> None:
    config = build()
    assert config.engine == "async"
    assert config.ordering == "key"
    assert config.on_failure == "stop"
    assert config.kafka_config["enable.auto.commit"] is False
    assert config.kafka_config["enable.auto.offset.store"] is False
    assert config.group_id == "g"
    assert not config.cooperative
    assert build(dlq_topic="dlq").on_failure == "dead_letter"
    cooperative = {**KAFKA, "partition.assignment.strategy": "cooperative-sticky"}
    assert build(kafka_config=cooperative).cooperative
    assert config.batch_size is None  # one record per call unless asked
    assert build(batch_size=100).batch_size == 100


BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"engine": "threads"}, ValueError, "engine"),
    ({"ordering": "total"}, ValueError, "ordering"),
    ({"max_in_flight": 0}, ValueError, "max_in_flight"),
    ({"max_in_flight": "10"}, TypeError, "max_in_flight"),
    ({"max_in_flight": True}, TypeError, "max_in_flight"),
    ({"max_in_flight": 1.5}, TypeError, "max_in_flight"),
    ({"max_in_flight_per_lane": 0}, ValueError, "max_in_flight_per_lane"),
    ({"max_in_flight_per_lane": 2.0}, TypeError, "max_in_flight_per_lane"),
    ({"backlog_size": -1}, ValueError, "backlog_size"),
    ({"backlog_max_bytes": 0}, ValueError, "backlog_max_bytes"),
    ({"concurrency": 0}, ValueError, "concurrency"),
    ({"engine": "process", "workers": 0}, ValueError, "workers"),
    ({"engine": "process", "worker_concurrency": 0}, ValueError, "worker_concurrency"),
    ({"engine": "process", "ipc_batch_size": 0}, ValueError, "ipc_batch_size"),
    ({"engine": "process", "ipc_batch_max_wait_s": -1}, ValueError, "ipc_batch_max_wait_s"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": "100"}, TypeError, "batch_size"),
    ({"batch_size": 2000, "max_in_flight": 1000}, ValueError, "batch_size"),  # more than it
    ({"batch_max_wait_s": -1}, ValueError, "batch_max_wait_s"),
    ({"retries": -1}, ValueError, "retries"),
    ({"retries": "3"}, TypeError, "retries"),
    ({"retry_backoff_s": -0.1}, ValueError, "retry_backoff_s"),
    ({"retry_backoff_s": "fast"}, TypeError, "retry_backoff_s"),
    ({"retry_backoff_max_s": -1}, ValueError, "retry_backoff_max_s"),
    ({"on_failure": "ignore"}, ValueError, "on_failure"),
    ({"on_failure": "dead_letter"}, ValueError, "dlq_topic"),
    # A dead-letter topic no failure would ever be written to: a mistake, not a choice.
    ({"on_failure": "skip", "dlq_topic": "dlq"}, ValueError, "dlq_topic is used only"),
    ({"on_failure": "stop", "dlq_topic": "dlq"}, ValueError, "dlq_topic is used only"),
    ({"dlq_topic": ""}, ValueError, "dlq_topic"),
    ({"dlq_topic": 5}, ValueError, "dlq_topic"),
    ({"dlq_topic": "t"}, ValueError, "dlq_topic"),
    ({"commit_interval_s": -1}, ValueError, "commit_interval_s"),
    ({"drain_timeout_s": -1}, ValueError, "drain_timeout_s"),
    ({"revoke_grace_s": -1}, ValueError, "revoke_grace_s"),
    ({"poll_batch_size": 0}, ValueError, "poll_batch_size"),
    ({"engine": "process", "codec": "json"}, ValueError, "codec"),
    ({"topics": []}, ValueError, "topics"),
    ({"topics": "orders"}, ValueError, "topics"),
    ({"topics": ["ok", ""]}, ValueError, "topics"),
    ({"kafka_config": "localhost:9092"}, TypeError, "kafka_config"),
    ({"kafka_config": {"group.id": "g"}}, ValueError, "bootstrap.servers"),
    ({"kafka_config": {"bootstrap.servers": "x"}}, ValueError, "group.id"),
    ({"kafka_config": {**KAFKA, "enable.auto.commit": True}}, ValueError, "enable.auto.commit"),
    (
        {"kafka_config": {**KAFKA, "enable.auto.offset.store": "true"}},
        ValueError,
        "enable.auto.offset.store",
    ),
    ({"kafka_config": {**KAFKA, "on_commit": print}}, ValueError, "on_commit"),
]


@pytest.mark.parametrize(
    ("options", "error", "name"),
    BAD_OPTIONS,
    ids=[f"{name}-{i}" for i, (_, _, name) in enumerate(BAD_OPTIONS)],
)
def test_bad_option_raises_naming_it(
    options: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name.replace(".", r"\.")):
        build(**options)


@pytest.mark.parametrize(
    ("engine", "option", "value", "takes"),
    [
        ("baseline", "concurrency", 4, "'async'"),
        ("process", "concurrency", 8, "'async'"),
        ("async", "workers", 2, "'process'"),
        ("baseline", "worker_concurrency", 4, "'process'"),
        ("async", "ipc_batch_size", 32, "'process'"),
        ("async", "ipc_batch_max_wait_s", 0.01, "'process'"),
        ("baseline", "codec", "msgpack", "'process'"),
    ],
)
def test_an_option_the_engine_does_not_read_is_refused(
    engine: str, option: str, value: object, takes: str
) -> None:
    """Set for an engine that ignores it, an option would change nothing: refused, naming
    the engine that reads it. Left at its default it is no mistake."""
    with pytest.raises(ValueError) as info:
        build(engine=engine, **{option: value})
    assert f"engine={engine!r} does not read it: drop {option}, or use engine={takes}" in str(
        info.value
    )
    assert build(engine=engine, **{option: getattr(DEFAULTS, option)}).engine == engine


def test_allowed_values_are_listed() -> None:
    with pytest.raises(ValueError, match="'baseline', 'async', 'process'"):
        build(engine="nope")
    with pytest.raises(ValueError, match="'key', 'partition', 'unordered'"):
        build(ordering="nope")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(TypeError, match="max_inflight"):
        ParallelConsumer(KAFKA, topics=["t"], handler=handler, max_inflight=10)


def test_consumer_validates_before_connecting() -> None:
    # Port 1 has no broker: building must fail on the option, not on a connection.
    with pytest.raises(ValueError, match="ordering"):
        ParallelConsumer(KAFKA, topics=["t"], handler=handler, ordering="total")
    with pytest.raises(TypeError, match="handler"):
        ParallelConsumer(KAFKA, topics=["t"], handler="not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline"):
        ParallelConsumer(KAFKA, topics=["t"], handler=async_handler, engine="baseline")
    with pytest.raises(TypeError, match="worker_init"):
        ParallelConsumer(KAFKA, topics=["t"], handler=handler, worker_init=3)  # type: ignore[arg-type]


def test_run_arguments_are_validated() -> None:
    consumer = ParallelConsumer(KAFKA, topics=["t"], handler=handler, engine="baseline")
    with pytest.raises(ValueError, match="max_records"):
        consumer.run(max_records=0)
    with pytest.raises(ValueError, match="timeout"):
        consumer.run(timeout=0)


def test_retry_delay_is_exponential_capped_and_jittered() -> None:
    policy = build(retry_backoff_s=0.1, retry_backoff_max_s=0.5).retry
    assert policy.delay(1, 0.0) == pytest.approx(0.1)
    assert policy.delay(2, 0.0) == pytest.approx(0.2)
    assert policy.delay(3, 0.0) == pytest.approx(0.4)
    assert policy.delay(4, 0.0) == pytest.approx(0.5)
    assert policy.delay(10, 0.0) == pytest.approx(0.5)
    assert 0.05 <= policy.delay(1, 0.999) < 0.1


def test_engine_registry_is_the_one_list_of_engines() -> None:
    from pyrallel_consumer.engines.base import Engine
    from pyrallel_consumer.engines.registry import ENGINE_NAMES, ENGINES, Capacity, engine_spec

    assert ENGINE_NAMES == ("baseline", "async", "process")
    capacity = Capacity(max_in_flight=100, concurrency=8, workers=2, worker_concurrency=4)
    assert [ENGINES[name].slots(capacity) for name in ENGINE_NAMES] == [1, 8, 8]
    assert [ENGINES[name].cpu_cores(capacity, 4, True) for name in ENGINE_NAMES] == [1, 4, 2]
    assert ENGINES["async"].cpu_cores(capacity, 4, False) == 1
    for name in ENGINE_NAMES:
        config = build_config(KAFKA, topics=["t"], engine=name)
        engine = engine_spec(name).create(print, config)
        assert isinstance(engine, Engine) and engine.name == name
    with pytest.raises(ValueError, match="engine must be one of 'baseline', 'async', 'process'"):
        engine_spec("threads")


@pytest.mark.parametrize("engine", ["baseline", "async"])
def test_worker_hooks_on_an_engine_without_worker_processes_are_refused(engine: str) -> None:
    with pytest.raises(ValueError, match=rf"worker_init runs in worker processes.*{engine!r}"):
        ParallelConsumer(KAFKA, topics=["t"], handler=print, engine=engine, worker_init=print)


def test_batch_mode_lets_one_lane_fill_a_batch() -> None:
    """The default per-lane cap is at least batch_size, so a hot key's batches can be full."""
    assert build_config(KAFKA, topics=["t"]).max_in_flight_per_lane == 32
    assert build_config(KAFKA, topics=["t"], batch_size=100).max_in_flight_per_lane == 100
    assert build_config(KAFKA, topics=["t"], batch_size=10).max_in_flight_per_lane == 32
    given = build_config(KAFKA, topics=["t"], batch_size=100, max_in_flight_per_lane=5)
    assert given.max_in_flight_per_lane == 5


@pytest.mark.parametrize(
    ("options", "window", "lane_cap"),
    [
        ({}, 1000, 32),
        ({"batch_size": 100}, 1000, 100),  # ten batches fit already
        ({"batch_size": 500}, 2000, 500),  # four batches: none waits for another's round trip
        ({"batch_size": 500, "max_in_flight": 600}, 600, 500),  # the user's value stands
        ({"max_in_flight": 50}, 50, 5),
    ],
)
def test_batch_mode_keeps_several_batches_in_flight_by_default(
    options: dict[str, Any], window: int, lane_cap: int
) -> None:
    config = build_config(KAFKA, topics=["t"], **options)
    assert (config.max_in_flight, config.max_in_flight_per_lane) == (window, lane_cap)


def test_the_consumer_shows_the_window_it_derived() -> None:
    def handler(records: list[Record]) -> None:
        pass

    consumer = ParallelConsumer(KAFKA, topics=["t"], handler=handler, batch_size=500)
    assert consumer.config.max_in_flight == 2000


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("on_complet", "on_complete"), ("handlr", "handler"), ("worker_inti", "worker_init")],
)
def test_a_misspelt_own_option_gets_the_closest_name(typo: str, meant: str) -> None:
    with pytest.raises(TypeError, match=f"unexpected option '{typo}'; did you mean '{meant}'"):
        ParallelConsumer(KAFKA, topics=["t"], handler=print, **{typo: None})
