"""A blocking librdkafka call bounded from outside.

librdkafka's transaction calls take a timeout, but a transaction coordinator that goes away in
the middle of one (a broker restart) can hold the call past it for good (librdkafka issues 5456
and 5511, seen here with send_offsets_to_transaction on a restarted single broker). `bounded`
runs such a call on a daemon thread and waits at most `limit_s` for it: the control thread never
hangs with it. A handle whose call never returned is kept referenced for the life of the process,
since destroying a librdkafka handle while a call is inside it would crash the process.

Ownership: called by the control thread; the daemon thread only runs the call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

# Handles a call is still inside: never destroyed (module doc).
_STUCK: list[object] = []


class Hung(Exception):
    """The call did not return within its bound (the text names it)."""


def bounded(call: Callable[[], object], limit_s: float, handle: object, what: str) -> None:
    """Run `call` and wait at most `limit_s` seconds for it; raise what it raised, or Hung
    (then `handle`, the librdkafka object it runs on, is never destroyed)."""
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome.append(exc)
        else:
            outcome.append(None)
        finally:
            done.set()

    threading.Thread(target=run, name="pyrallel-bounded-call", daemon=True).start()
    if not done.wait(limit_s):
        _STUCK.append(handle)
        raise Hung(f"{what} did not return within {limit_s:.0f} s")
    if outcome[0] is not None:
        raise outcome[0]
