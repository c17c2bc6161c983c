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

Called from the control thread, once per run, before the group is joined. The two steps of a
configuration read (`admin_client`, `read_setting`, failing with one of READ_ERRORS) serve
topic_limits.py too.
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
# Callbacks that belong to the consumer or producer the settings came from: an admin client's
# errors are reported by its caller (an INFO line), not through the user's callbacks.
_CLIENT_CALLBACKS = ("error_cb", "stats_cb", "throttle_cb", "on_delivery", "dr_cb", "dr_msg_cb")
# What a failed read raises. TimeoutError: concurrent.futures' own in Python 3.11+; LookupError:
# no broker or no such entry in the answer; ValueError/TypeError: settings the admin client
# refused, or a value that is not a positive integer.
READ_ERRORS = (KafkaException, ValueError, TypeError, LookupError, TimeoutError)


def admin_client(settings: Mapping[str, Any]) -> AdminClient:
    """An admin client from a producer-type client's `settings`, without their callbacks, its
    log through `logging`. Raises one of READ_ERRORS when librdkafka refuses the settings."""
    kept = {name: value for name, value in settings.items() if name not in _CLIENT_CALLBACKS}
    return AdminClient(with_logger(kept))


def read_setting(admin: AdminClient, resource: ConfigResource, name: str, timeout: float) -> int:
    """The positive integer setting `name` of `resource`, read within `timeout` seconds.
    Raises one of READ_ERRORS."""
    future = admin.describe_configs([resource], request_timeout=timeout)[resource]
    entries = future.result(timeout=timeout)
    value = int(entries[name].value)  # KeyError when the broker does not list it
    if value <= 0:
        raise ValueError(f"{name}={value} is not a positive size")
    return value


def metadata_limit(kafka_config: Mapping[str, Any], timeout: float) -> int:
    """The cluster's offset.metadata.max.bytes, in bytes (characters of commit metadata), read
    within about `timeout` seconds with the connection settings of `kafka_config` (a consumer's
    librdkafka settings). MAX_METADATA_BYTES (4096, Kafka's default) when it cannot be read, or
    reads as something other than a positive integer; never raises."""
    try:
        return _read(producer_settings(kafka_config), timeout)
    except READ_ERRORS as exc:
        log.info(
            "could not read the cluster's %s (%s: %s); sizing commit metadata for Kafka's "
            "default of %d bytes",
            SETTING,
            type(exc).__name__,
            exc,
            MAX_METADATA_BYTES,
        )
        return MAX_METADATA_BYTES


def _read(settings: Mapping[str, Any], timeout: float) -> int:
    """One attempt; any failure raises. The admin client is closed when this returns or
    raises: confluent-kafka's AdminClient has no close(), its librdkafka client is destroyed
    with the last reference, which is this frame's."""
    deadline = time.monotonic() + timeout
    admin = admin_client(settings)
    cluster = admin.list_topics(timeout=timeout)
    broker_id = cluster.controller_id
    if broker_id < 0:  # not reported (an older broker): any broker answers for its own
        broker_id = min(cluster.brokers)  # ValueError when there is none
    resource = ConfigResource(ResourceType.BROKER, str(broker_id))
    return read_setting(admin, resource, SETTING, max(0.1, deadline - time.monotonic()))
