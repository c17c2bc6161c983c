"""The process worker's ResultSender never leaves a result behind while its thread sleeps, and
never waits for a fuller batch that nothing could fill.

The race this guards against needs no free-threaded build, only a reporter thread that loses
the processor between two steps of `report`: it looks at the deque (results are waiting, so
no wake-up seems needed), the sender sends those results and goes to sleep on an empty deque,
and then the reporter appends. The result then waited for the next report, forever if none
came (the last record of a burst stayed in flight, its partition uncommitted). The test makes
that interleaving happen on purpose: a GroupReport whose `ids` hold the reporter back between
the look and the append until the sender has sent what was there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import cast

import pytest

from pyrallel_consumer.codec import load_codec
from pyrallel_consumer.engines.process_worker import ResultSender
from pyrallel_consumer.work import GroupReport, Outcome, Report

DEADLINE_S = 10.0  # generous: a correct sender sends within its batch wait
GATHER_S = 0.3  # the sender's wait for a fuller batch: the reporter looks during it
SETTLE_S = 0.1  # after a send, for the sender thread to reach its sleep


class Pipe:
    """The worker's end of the pipe: decodes each result batch sent, for the test to wait on."""

    def __init__(self) -> None:
        self._codec = load_codec("msgpack")
        self._cond = threading.Condition()
        self.ids: list[int] = []
        self.batches: list[list[int]] = []

    def send_bytes(self, data: bytes) -> None:
        results = self._codec.decode_results(data)
        with self._cond:
            self.ids.extend(result.work_id for result in results)
            self.batches.append([result.work_id for result in results])
            self._cond.notify_all()

    def wait_for(self, work_id: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: work_id in self.ids, timeout)


class HeldIds(list[int]):
    """Work ids that yield only once `release` is set: the report holding them has looked at
    the deque by then, and appends only after the sender sent what was there."""

    def __init__(self, ids: list[int], release: threading.Event) -> None:
        super().__init__(ids)
        self._release = release

    def __iter__(self) -> Iterator[int]:
        self._release.wait(DEADLINE_S)
        return super().__iter__()


def test_a_result_appended_while_the_sender_falls_asleep_is_sent() -> None:
    pipe = Pipe()
    sender = ResultSender(cast(Connection, pipe), load_codec("msgpack"), 100, GATHER_S)
    try:
        sender.report(Report(1, Outcome.SUCCEEDED, 1, 0.0))  # the sender gathers for GATHER_S
        release = threading.Event()
        late = GroupReport(HeldIds([2], release), Outcome.SUCCEEDED, 1, 0.0)
        reporter = threading.Thread(target=sender.report, args=(late,))
        reporter.start()  # looks at the deque (result 1 waits there), then waits in `ids`
        assert pipe.wait_for(1, DEADLINE_S), "the first result was never sent"
        time.sleep(SETTLE_S)  # not an assertion: if the sender is not asleep yet, no harm
        release.set()
        reporter.join(DEADLINE_S)
        assert pipe.wait_for(2, DEADLINE_S), (
            "a result appended while the sender fell asleep was never sent"
        )
    finally:
        sender.close()
    assert sorted(pipe.ids) == [1, 2]


HOUR_S = 3600.0  # a batch wait no test outlives: a result sent at all was not waited for


@pytest.mark.parametrize("given", [1, 3])
def test_results_go_at_once_when_every_record_given_is_reported(given: int) -> None:
    """Fewer records than a batch are in the worker (a lone record in a quiet topic, a worker
    death's suspect sent alone): once all are reported the batch is as full as it gets, and
    goes in one message without waiting out the batch wait."""
    pipe = Pipe()
    sender = ResultSender(cast(Connection, pipe), load_codec("msgpack"), 100, HOUR_S)
    try:
        sender.give(given)
        for work_id in range(1, given + 1):
            sender.report(Report(work_id, Outcome.SUCCEEDED, 1, 0.0))
        assert pipe.wait_for(given, DEADLINE_S), "results waited for a batch nothing could fill"
    finally:
        sender.close()
    assert pipe.batches[0] == list(range(1, given + 1))
