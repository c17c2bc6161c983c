"""Client-level errors: librdkafka's error callback and the errored messages consume() returns.

A fatal error, in any of its forms (client.is_fatal; a commit refused as fatal goes through
`fatal_error` too), is parked as KafkaFatalError and ends the run at once; the rest are
informational or pass by themselves (librdkafka reconnects, refetches, rejoins), so they are
logged, each distinct one at most once per interval.

Ownership: the control thread (librdkafka serves its error callback inside consume/poll).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError

from pyrallel_consumer.control.client import (
    ALL_BROKERS_DOWN,
    PARTITION_EOF,
    TRANSPORT,
    KafkaErrorInfo,
    is_fatal,
)
from pyrallel_consumer.control.kafka_log import RepeatLimiter, log_limited
from pyrallel_consumer.errors import KafkaFatalError
from pyrallel_consumer.faults import Faults

log = logging.getLogger("pyrallel_consumer")

# A transactional producer fenced by a newer one with the same transactional.id (the broker's
# code, librdkafka's local one, and the epoch refusal an older broker sends instead).
PRODUCER_FENCED_CODES = frozenset(
    {KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


# What goes on while no broker of a client answers (librdkafka reconnects meanwhile).
_WHILE_DOWN = {
    "consumer": "run() waits for records until stop(), a signal, its timeout or max_records "
    "ends it",
    "output producer": "records stay in flight until their outputs are acknowledged",
    "dead-letter producer": "failed records stay in flight until their dead letters are "
    "acknowledged",
    "transactional producer": "records stay in flight, and transactions abort and are redone "
    "until it is back",
}


class KafkaErrors:
    """The `ErrorCallback` the control loop gives its client, also called for errored
    messages; `for_client` gives the run's producers theirs. What it logs names the client
    (one of _WHILE_DOWN's) and, when no broker answers, its bootstrap.servers."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        faults: Faults,
        clock: Callable[[], float],
        client: str = "consumer",
        repeats: RepeatLimiter | None = None,
    ) -> None:
        self._servers = kafka_config.get("bootstrap.servers")
        self._client = client
        self._faults = faults
        self._clock = clock
        self._repeats = repeats or RepeatLimiter(clock=clock)

    def for_client(self, client: str, kafka_config: Mapping[str, Any]) -> KafkaErrors:
        """The callback of another client of the run (`client`, a producer, built with
        `kafka_config`): the same faults and repeat limiter, its own name and servers."""
        return KafkaErrors(kafka_config, self._faults, self._clock, client, self._repeats)

    def __call__(self, error: KafkaErrorInfo) -> None:
        if is_fatal(error):
            self._faults.park(fatal_error(error.str(), error.code(), error.name()))
            return
        code = error.code()
        if code == PARTITION_EOF:
            return
        client = self._client
        if code == TRANSPORT:  # librdkafka's own log line (pyrallel_consumer.kafka) says it
            log.debug("kafka %s: %s", client, error.str())
        elif code == ALL_BROKERS_DOWN:
            message = (
                f"kafka {client}: {error.str()} (bootstrap.servers={self._servers}); "
                f"librdkafka keeps reconnecting, and while no broker answers "
                f"{_WHILE_DOWN[client]}"
            )
            log_limited(self._repeats, (client, code), logging.WARNING, message, log)
        else:
            key = (client, code, error.str())
            message = f"kafka {client}: {error.str()}"
            log_limited(self._repeats, key, logging.WARNING, message, log)


def fatal_error(text: str, code: int | None, name: str) -> KafkaFatalError:
    """The KafkaFatalError of a fatal librdkafka error, with the fix for the usual cause."""
    hint = ""
    lower = text.lower()
    if code in PRODUCER_FENCED_CODES or ("producer" in lower and "fenced" in lower):
        code, name = KafkaError.PRODUCER_FENCED, "PRODUCER_FENCED"
        hint = (
            " (a newer instance started with the same transactional_id and took over its "
            "transactions: this one is a zombie; give each running member its own "
            "transactional_id, and reuse an id only for the restart of the same member)"
        )
    elif "fenced" in lower or code == KafkaError.FENCED_INSTANCE_ID:
        # librdkafka's error callback gives the generic _FATAL code; its text names the cause,
        # which this names by its own code, as a commit refused for it would.
        code, name = KafkaError.FENCED_INSTANCE_ID, "FENCED_INSTANCE_ID"
        hint = (
            " (another consumer joined the group with the same group.instance.id: give each "
            "consumer its own)"
        )
    return KafkaFatalError(
        f"librdkafka fatal error: {text}{hint}; the consumer stopped at once, handling and "
        "committing nothing more",
        code,
        name,
    )
