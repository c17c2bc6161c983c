"""How long the control plane may wait without polling before the group membership is at risk.

A wait inside a rebalance callback (the revoke grace, including the one `close()` runs) does
not poll, and during an eager revoke librdkafka sends no heartbeat either: a wait longer than
session.timeout.ms ends the membership (the commit after it fails with UNKNOWN_MEMBER_ID), one
longer than max.poll.interval.ms makes the consumer leave the group. Such waits are capped at
half the smaller of the two, which leaves the other half for the commit that follows them.
Waits that keep polling (the shutdown drain) keep the membership and are not capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# librdkafka's defaults, used when the kafka_config does not set them.
DEFAULT_SESSION_TIMEOUT_MS = 45_000
DEFAULT_MAX_POLL_INTERVAL_MS = 300_000
SHARE_OF_SESSION = 0.5


def wait_bound_s(kafka_config: Mapping[str, Any]) -> float:
    """Seconds a non-polling wait may last: SHARE_OF_SESSION x min(session.timeout.ms,
    max.poll.interval.ms) / 1000. Raises ValueError when either is not a whole number of
    milliseconds (librdkafka takes ints or digit strings)."""
    session_ms = _milliseconds(kafka_config, "session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS)
    poll_ms = _milliseconds(kafka_config, "max.poll.interval.ms", DEFAULT_MAX_POLL_INTERVAL_MS)
    return SHARE_OF_SESSION * min(session_ms, poll_ms) / 1000.0


def _milliseconds(kafka_config: Mapping[str, Any], name: str, default: int) -> int:
    value = kafka_config.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"kafka_config {name!r} must be a whole number of milliseconds, got {value!r}"
        ) from None
