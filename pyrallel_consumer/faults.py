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


class Faults:
    """The first parked error wins; later ones are logged. `on_park` runs once per parked
    error (the control loop passes its stop request). Safe from any thread."""

    def __init__(self, on_park: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._first: PyrallelError | None = None
        self._on_park = on_park
        self.fatal = False  # a KafkaFatalError was parked: commit nothing more, handle nothing

    def park(self, error: PyrallelError) -> None:
        with self._lock:
            first = self._first is None
            if first:
                self._first = error
            if isinstance(error, KafkaFatalError):
                self.fatal = True
        if not first:
            log.warning("also failed while stopping: %s", error)
        self._on_park()

    @property
    def first(self) -> PyrallelError | None:
        """The error run() will raise, if any."""
        return self._first
