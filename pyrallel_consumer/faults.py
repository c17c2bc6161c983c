"""The one error path: every failure, from any thread or callback, is parked here, and the
control thread ends the run and raises the first one from `run()`.

Who parks: the control thread (commit refusals, the failure policy, callbacks, librdkafka's
error callback and errored messages, which librdkafka serves inside consume/poll on that
thread); engines report theirs by raising from `reports()`, which the control thread parks.
Parking never raises and never blocks beyond a lock, so it is safe inside librdkafka's
callbacks, where an exception would be lost or surface from an unrelated call. The first error
and `fatal` are written under the lock; the control thread reads each as one attribute.

Rejected: raising at the point of failure. Inside a librdkafka callback the exception escapes
from whichever consume() served it, past the code that would commit and close; on an engine
thread it ends the thread and leaves its records in flight with nobody running them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pyrallel_consumer.errors import KafkaFatalError, PyrallelError

log = logging.getLogger("pyrallel_consumer")

# Errors after the first that are logged one by one; the rest are only counted (`later`): a
# handler failing on every record would otherwise log once per record in flight.
LATER_LOGGED = 5


class Faults:
    """The first parked error wins and is logged at once (the run may take up to
    drain_timeout_s to stop); the first LATER_LOGGED later ones are logged, all are counted in
    `later`. `on_park` runs once per parked error (the control loop passes its stop request).
    Safe from any thread."""

    def __init__(self, on_park: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._first: PyrallelError | None = None
        self._on_park = on_park
        self.fatal = False  # a KafkaFatalError was parked: commit nothing more, handle nothing
        self.later = 0  # errors parked after the first

    def park(self, error: PyrallelError) -> None:
        with self._lock:
            first = self._first is None
            if first:
                self._first = error
            else:
                self.later += 1
                later = self.later
            if isinstance(error, KafkaFatalError):
                self.fatal = True
        if first:
            log.warning("stopping on %s: %s", type(error).__name__, error)
        elif later <= LATER_LOGGED:
            log.warning("also failed while stopping: %s", error)
        self._on_park()

    @property
    def first(self) -> PyrallelError | None:
        """The error run() will raise, if any."""
        return self._first

    def log_unlogged(self) -> None:
        """Say how many later errors were counted and not logged, if any (as the run ends)."""
        if self.later > LATER_LOGGED:
            log.warning("%d more errors while stopping were not logged", self.later - LATER_LOGGED)
