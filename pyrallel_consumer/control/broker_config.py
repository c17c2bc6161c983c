"""The cluster's commit metadata limit (offset.metadata.max.bytes), read once per run.

Brokers refuse a commit whose metadata is longer than offset.metadata.max.bytes (4096 by
default, set per cluster in server.properties), so the control plane sizes its commit metadata
by what the cluster really accepts rather than by the default. It is read with a DescribeConfigs
request for one broker (the controller, or any broker the metadata names) from a short-lived
admin client built from the consumer's own connection settings (`producer_settings`: an admin
client is a producer-type librdkafka client, so it takes exactly a producer's share).

Rejected: assuming 4096. A cluster configured lower would refuse every commit with metadata
longer than its limit, and one configured higher would block partitions needlessly early.
When the limit cannot be read (no DescribeConfigs permission, a timeout, a broker that does not
implement it), 4096 is used, Kafka's default, and one INFO line says so.

Called from the control thread, once per run, before the group is joined.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined, unused-ignore]  # not in __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)

from pyrallel_consumer.control.kafka_log import with_logger
from pyrallel_consumer.control.offset_metadata import MAX_METADATA_BYTES
from pyrallel_consumer.kafka_settings import producer_settings

log = logging.getLogger("pyrallel_consumer")

SETTING = "offset.metadata.max.bytes"
# Callbacks that belong to the consumer: the admin client's errors are reported as the INFO line
# below, not through the user's error or statistics callbacks.
_CONSUMER_CALLBACKS = ("error_cb", "stats_cb", "throttle_cb", "on_delivery")


def metadata_limit(kafka_config: Mapping[str, Any], timeout: float) -> int:
    """The cluster's offset.metadata.max.bytes, in bytes (characters of commit metadata), read
    within about `timeout` seconds with the connection settings of `kafka_config` (a consumer's
    librdkafka settings). MAX_METADATA_BYTES (4096, Kafka's default) when it cannot be read, or
    reads as something other than a positive integer; never raises."""
    settings = {
        name: value
        for name, value in producer_settings(kafka_config).items()
        if name not in _CONSUMER_CALLBACKS
    }
    try:
        return _read(with_logger(settings), timeout)
    except (KafkaException, ValueError, TypeError, LookupError, TimeoutError) as exc:
        # TimeoutError: concurrent.futures' own in Python 3.11+; LookupError: no broker or no
        # such entry in the answer; ValueError/TypeError: settings the admin client refused.
        log.info(
            "could not read the cluster's %s (%s: %s); sizing commit metadata for Kafka's "
            "default of %d bytes",
            SETTING,
            type(exc).__name__,
            exc,
            MAX_METADATA_BYTES,
        )
        return MAX_METADATA_BYTES


def _read(settings: dict[str, Any], timeout: float) -> int:
    """One attempt; any failure raises. The admin client is closed when this returns or
    raises: confluent-kafka's AdminClient has no close(), its librdkafka client is destroyed
    with the last reference, which is this frame's."""
    deadline = time.monotonic() + timeout
    admin = AdminClient(settings)
    cluster = admin.list_topics(timeout=timeout)
    broker_id = cluster.controller_id
    if broker_id < 0:  # not reported (an older broker): any broker answers for its own
        broker_id = min(cluster.brokers)  # ValueError when there is none
    resource = ConfigResource(ResourceType.BROKER, str(broker_id))
    remaining = max(0.1, deadline - time.monotonic())
    future = admin.describe_configs([resource], request_timeout=remaining)[resource]
    entries = future.result(timeout=remaining)
    value = int(entries[SETTING].value)  # KeyError when the broker does not list it
    if value <= 0:
        raise ValueError(f"{SETTING}={value} is not a positive size")
    return value
