"""Each output topic's max.message.bytes, read once per topic: outputs over it are refused
before they are produced.

Why check before producing: librdkafka puts a partition's queued records into one record batch,
and the broker refuses a batch over the topic's max.message.bytes as a whole, so one output over
the limit made every output that shared its batch fail with MSG_SIZE_TOO_LARGE too (measured on
Kafka 4.1: a 20 kB output among 99 small ones failed all of them), and their redone records
shared a batch with its retry again. Refused here, it never joins a batch. The check counts the
output's key, value and headers plus BATCH_OVERHEAD_BYTES (the v2 batch header and one record's
framing); it is skipped under compression (the limit applies to the compressed batch), and when
the limit cannot be read (no DescribeConfigs permission, a timeout), after one INFO line: then
the broker's refusal is what the user sees. A topic that does not exist gets a WARNING instead:
its outputs will be refused (after librdkafka's wait for the topic, about 30 s) unless the
brokers create it.

The admin client is built from the output producer's settings (an admin client is a
producer-type librdkafka client), on the control thread, at the first output to each topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka.admin import (  # type: ignore[attr-defined, unused-ignore]  # not in __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)

from pyrallel_consumer.control.broker_config import READ_ERRORS, admin_client, read_setting
from pyrallel_consumer.control.producer import kafka_error

log = logging.getLogger("pyrallel_consumer")

SETTING = "max.message.bytes"
# A v2 record batch's header (61 bytes) plus one record's framing (varint lengths, attributes,
# deltas): an upper bound for one small record, so an output within the limit by this check fits.
BATCH_OVERHEAD_BYTES = 100
READ_TIMEOUT_S = 5.0


class TopicLimits:
    """`limit(topic)`: the topic's max.message.bytes, or None when it is not checked."""

    def __init__(self, producer_config: Mapping[str, Any], timeout: float = READ_TIMEOUT_S):
        self._settings = producer_config
        compression = str(producer_config.get("compression.type", "none")).lower()
        self._enabled = compression in ("none", "")
        self._timeout = timeout
        self._limits: dict[str, int | None] = {}
        self._admin: AdminClient | None = None

    def limit(self, topic: str) -> int | None:
        try:
            return self._limits[topic]
        except KeyError:
            limit = self._limits[topic] = self._read(topic) if self._enabled else None
            return limit

    def _read(self, topic: str) -> int | None:
        try:
            if self._admin is None:
                self._admin = admin_client(self._settings)
            resource = ConfigResource(ResourceType.TOPIC, topic)
            return read_setting(self._admin, resource, SETTING, self._timeout)
        except READ_ERRORS as exc:
            err = kafka_error(exc)
            if err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                log.warning(
                    "output topic %r does not exist: outputs to it are refused unless the "
                    "brokers create topics on first use (auto.create.topics.enable); create it, "
                    "or check the name the handler gives its Outputs",
                    topic,
                )
                return None
            log.info(
                "could not read %s of output topic %r (%s: %s); outputs to it are not checked "
                "against it before they are produced",
                SETTING,
                topic,
                type(exc).__name__,
                exc,
            )
            return None
