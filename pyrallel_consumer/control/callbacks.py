"""The user's callbacks (`on_complete`, `on_assign`), called so that their faults reach run().

Callbacks run on the control thread, between polls: while one runs, no record is received, no
report applied and no commit made, and a callback inside a rebalance delays the rebalance. So
a callback that raises ends the run with CallbackError (its exception as the cause), and one
that takes longer than SLOW_CALLBACK_S is reported at WARNING (rate-limited): past
max.poll.interval.ms the group would drop this member and move its partitions.

Ownership: the control thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from pyrallel_consumer.control.kafka_log import RepeatLimiter, log_limited
from pyrallel_consumer.errors import CallbackError
from pyrallel_consumer.faults import Faults

log = logging.getLogger("pyrallel_consumer")

# A callback slower than this is worth a warning: a few of them in a row cost a visible share
# of the poll loop's time, long before they approach max.poll.interval.ms (300 s default).
SLOW_CALLBACK_S = 1.0

Argument = TypeVar("Argument")


class Callback(Generic[Argument]):
    """Calls `function(argument)`; an exception parks CallbackError naming `name`, and the
    callback is not called again (the run is stopping; a broken callback would only fail
    again on each record of the drain)."""

    __slots__ = ("_clock", "_faults", "_function", "_slow", "name")

    def __init__(
        self,
        name: str,
        function: Callable[[Argument], object],
        faults: Faults,
        clock: Callable[[], float],
        slow: RepeatLimiter,
    ) -> None:
        self.name = name
        self._function: Callable[[Argument], object] | None = function
        self._faults = faults
        self._clock = clock
        self._slow = slow

    def __call__(self, argument: Argument) -> None:
        """Call it, untimed (on_complete runs per record: its caller times a whole turn of
        calls and passes the time to `warn_if_slow`, two clock reads per turn, not per
        record)."""
        function = self._function
        if function is None:
            return
        try:
            function(argument)
        except Exception as exc:
            self._function = None
            self._faults.park(CallbackError(self.name, exc))

    def each(self, arguments: Iterable[Argument]) -> None:
        """`self(argument)` for each, in order, in one guarded loop (a batch's completions:
        the guard per call cost more than the call of a small callback)."""
        function = self._function
        if function is None:
            return
        try:
            # The loop in C (an empty deque drains the map): with a C callable such as a
            # list's append, no bytecode runs per argument.
            deque(map(function, arguments), maxlen=0)
        except Exception as exc:
            self._function = None
            self._faults.park(CallbackError(self.name, exc))

    def timed(self, argument: Argument) -> None:
        """Call it and warn if that took longer than SLOW_CALLBACK_S."""
        started = self._clock()
        self(argument)
        self.warn_if_slow(self._clock() - started)

    def warn_if_slow(self, took: float) -> None:
        """Warn (rate-limited) when calls of this callback took `took` > SLOW_CALLBACK_S
        seconds of the control thread."""
        if took > SLOW_CALLBACK_S:
            message = (
                f"{self.name} took {took:.1f} s on the control thread, which polls no records "
                "meanwhile; past max.poll.interval.ms the group drops this consumer. Hand slow "
                "work to a queue or a thread of your own."
            )
            log_limited(self._slow, self.name, logging.WARNING, message, log)
