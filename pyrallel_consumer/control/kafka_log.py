"""librdkafka's log lines and client errors, through Python `logging`, with repeats rate-limited.

Without this, librdkafka prints its own lines to stderr and the `error_cb` reports the same
event again: against an address where nothing listens, about 30 lines a second, forever. Every
librdkafka client the library builds (the consumer, the dead-letter producer) gets a
`LibrdkafkaLog` as its `logger` (a confluent-kafka setting; it then serves log lines inside
poll/consume/flush), unless the user set a `logger` of their own.

Each distinct line is logged at most once per REPEAT_INTERVAL_S; the next one after the
interval says how many repeats were suppressed. Rejected: logging's own filters, which cannot
count what they drop per message without state of this kind anyway.

The limiter's memory is bounded: a key whose interval passed with no repeat suppressed is
forgotten (a new line of it would be logged anyway), and beyond MAX_KEYS keys the one logged
longest ago is evicted, losing at most its count of suppressed repeats. Without this, lines that
differ in ways `_VOLATILE` does not know (a broker id, a request counter) would each stay for the
life of the consumer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

KAFKA_LOG = logging.getLogger("pyrallel_consumer.kafka")
REPEAT_INTERVAL_S = 30.0
MAX_KEYS = 1000  # distinct lines remembered; far more than librdkafka's distinct events

# Parts of a librdkafka line that change between repeats of the same event.
_VOLATILE = re.compile(r"\d+ms|\d+ identical error\(s\) suppressed")


class RepeatLimiter:
    """Decides, per key, whether a line is logged now. Safe from any thread: librdkafka's
    callbacks and the control thread share one limiter, under its lock."""

    def __init__(
        self,
        interval_s: float = REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        """`interval_s`: seconds between two lines of one key; `clock`: monotonic seconds;
        `max_keys`: the most keys remembered at once."""
        self.interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # key -> (logged at, suppressed since), in the order the keys were last logged.
        self._seen: dict[object, tuple[float, int]] = {}
        self._next_sweep = clock() + interval_s

    def admit(self, key: object) -> int | None:
        """None: suppress this repeat. Else log it, and the int is how many repeats were
        suppressed since the key was last logged."""
        now = self._clock()
        with self._lock:
            seen = self._seen
            logged_at, suppressed = seen.get(key, (None, 0))
            if logged_at is not None and now - logged_at < self.interval_s:
                seen[key] = (logged_at, suppressed + 1)  # keeps its place in the order
                return None
            seen.pop(key, None)
            seen[key] = (now, 0)  # now the key logged last
            if now >= self._next_sweep:
                self._forget_quiet(now)
            while len(seen) > self._max_keys:
                del seen[next(iter(seen))]  # the key logged longest ago
            return suppressed

    def _forget_quiet(self, now: float) -> None:
        """Drop keys whose interval passed with nothing suppressed: admitting one again gives
        0 either way. At most once per interval, so admitting stays O(1) on average."""
        cutoff = now - self.interval_s
        for key in [
            k for k, (at, suppressed) in self._seen.items() if at <= cutoff and not suppressed
        ]:
            del self._seen[key]
        self._next_sweep = now + self.interval_s


def log_limited(
    limiter: RepeatLimiter, key: object, level: int, message: str, logger: logging.Logger
) -> None:
    """Log `message` unless `key` was logged within the limiter's interval."""
    suppressed = limiter.admit(key)
    if suppressed is None:
        return
    if suppressed:
        interval = limiter.interval_s
        message = f"{message} ({suppressed} repeats suppressed in the last {interval:.0f} s)"
    logger.log(level, "%s", message)


class LibrdkafkaLog:
    """The object confluent-kafka calls as `logger.log(level, "%s [%s] %s", facility,
    client_name, text)`, with a `logging` level already mapped from librdkafka's syslog one."""

    def __init__(self, limiter: RepeatLimiter | None = None) -> None:
        self._limiter = limiter or RepeatLimiter()
        self._retrying: set[tuple[object, str]] = set()  # retrying lines seen once

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        facility = args[0] if args else ""
        body = str(args[-1] if args else msg)
        key = (facility, _VOLATILE.sub("#", body))
        if level == logging.WARNING and body.rstrip().endswith("retrying"):
            level = self._retry_level(key)
        if not KAFKA_LOG.isEnabledFor(level):
            return
        text = msg % args if args else msg
        log_limited(self._limiter, key, level, f"librdkafka: {text}", KAFKA_LOG)

    def _retry_level(self, key: tuple[object, str]) -> int:
        """librdkafka retrying by itself (a coordinator still loading, a producer id not granted
        yet; seen on every fresh broker's first dead letter): INFO the first time, WARNING
        from the next time the same line is logged (REPEAT_INTERVAL_S on), when the condition
        lasts. A lasting failure also reaches the error callback."""
        if key in self._retrying:
            return logging.WARNING
        if len(self._retrying) >= MAX_KEYS:
            self._retrying.clear()
        self._retrying.add(key)
        return logging.INFO


def with_logger(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` plus a `LibrdkafkaLog` as its `logger`, unless it has one already."""
    if "logger" in config:
        return dict(config)
    return {**config, "logger": LibrdkafkaLog()}
