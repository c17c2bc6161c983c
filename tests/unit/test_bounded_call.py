"""control/bounded_call.py: a call that returns, raises, or outlives its bound (then Hung, and
the handle it ran on is kept alive)."""

from __future__ import annotations

import threading

import pytest

from pyrallel_consumer.control import bounded_call
from pyrallel_consumer.control.bounded_call import Hung, bounded


def test_a_call_that_returns_in_time_is_waited_for() -> None:
    seen: list[str] = []
    bounded(lambda: seen.append("ran"), 5.0, object(), "a call")
    assert seen == ["ran"]


def test_what_the_call_raises_is_raised_on_the_calling_thread() -> None:
    def fails() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        bounded(fails, 5.0, object(), "a call")


def test_a_call_past_its_bound_is_hung_and_its_handle_never_released() -> None:
    release = threading.Event()
    handle = object()
    with pytest.raises(Hung, match="send_offsets_to_transaction did not return within 0 s"):
        bounded(release.wait, 0.05, handle, "send_offsets_to_transaction")
    assert any(kept is handle for kept in bounded_call._STUCK)
    release.set()  # the daemon thread ends
