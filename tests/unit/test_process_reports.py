"""The process engine's record path between the control thread and the worker processes (no
Kafka: items submitted straight to the engine).

- Records that succeeded at their first attempt come back as one GroupReport per run of them
  in a result batch; a record retried or failed comes back as its own Report with its attempts,
  between the runs before and after it, so each lane's reports keep its records' order.
- A worker's records go out in the order they were submitted (the control plane's round-robin
  order), at most `max_outstanding` at a time: a window of several pipe messages, and at least
  twice the lane cap, so a lane's run of records leaves room for the others. Unordered
  records are dealt round-robin over the workers, continuing from one submit to the next.
- The worker's ResultSender sends every result exactly once, with many runner threads
  reporting at once, and sends a lone result without waiting for more.
"""

from __future__ import annotations

import threading
from multiprocessing.connection import Connection
from typing import Any, cast

import pytest
from engine_support import collect, engine_config, make_items, process_engine, wait_until

from pyrallel_consumer.codec import load_codec
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.process import ProcessEngine, outstanding_window
from pyrallel_consumer.engines.process_worker import SHUTDOWN, ResultSender
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import GroupReport, Outcome, Report, WorkItem

RECORDS = 200
RESULT_BATCH = 50  # divides RECORDS: every result batch is full (see the first test)
ALWAYS_FAILS = 7
FAILS_ONCE = 3  # and every offset 10 apart

_failed_once: set[int] = set()  # offsets that failed their first attempt, in the worker


def flaky(record: Record) -> None:
    if record.offset == ALWAYS_FAILS:
        raise RuntimeError("fails every attempt")
    if record.offset % 10 == FAILS_ONCE and record.offset not in _failed_once:
        _failed_once.add(record.offset)
        raise RuntimeError("fails its first attempt")


def flaky_reports(engines: list[Engine]) -> dict[int, Report]:
    """RECORDS records over 4 keys (work id = offset) through a `flaky` process engine, whose
    every result batch holds RESULT_BATCH results: each one's report, in arrival order.

    A result batch goes out when RESULT_BATCH results are ready (the wait is far longer than
    the test), and the window is cut to one batch (with the default window of several, the
    last one would wait out the hour)."""
    engine = process_engine(
        flaky,
        engines,
        ipc_batch_size=RESULT_BATCH,
        ipc_batch_max_wait_s=3600.0,
        max_in_flight_per_lane=RESULT_BATCH // 2,
    )
    engine.max_outstanding = RESULT_BATCH
    engine.start()
    engine.submit(make_items(RECORDS, keys=4, first_id=0))
    return collect(engine, RECORDS)


def test_first_try_successes_come_back_grouped_and_the_rest_one_by_one(
    engines: list[Engine],
) -> None:
    reports = flaky_reports(engines)
    alone = {i: report for i, report in reports.items() if type(report) is not GroupReport}
    retried = {i for i in range(RECORDS) if i % 10 == FAILS_ONCE}
    assert set(alone) == retried | {ALWAYS_FAILS}
    assert all(
        (r.outcome, r.attempts) == (Outcome.SUCCEEDED, 2) for i, r in alone.items() if i in retried
    )
    failed = alone[ALWAYS_FAILS]
    assert (failed.outcome, failed.attempts) == (Outcome.FAILED, 2)
    assert failed.error is not None and "fails every attempt" in failed.error
    groups = {id(r): r for r in reports.values() if type(r) is GroupReport}
    # One group per run of successes: a result batch's are cut only by the records alone.
    assert len(groups) <= RECORDS // RESULT_BATCH + len(alone)
    for group in groups.values():
        assert (group.outcome, group.attempts, group.error) == (Outcome.SUCCEEDED, 1, None)


def test_a_retried_record_is_reported_in_its_lanes_order_not_after_the_grouped_successes(
    engines: list[Engine],
) -> None:
    """A result batch's first-try successes are grouped, but a retried or failed record among
    them is reported between the successes before and after it: each lane's reports keep the
    order its records ran in, as on the other engines (the grouping once put every success of
    the batch first, so on_complete saw a retried record after later ones of its key)."""
    arrival = list(flaky_reports(engines))  # work ids (= offsets) in the order reported
    for key in range(4):
        of_key = [i for i in arrival if i % 4 == key]
        assert of_key == sorted(of_key), f"key-{key} reported out of order: {of_key}"


class RecordingPipe:
    """Stands in for a worker's pipe: keeps the work ids of each record batch sent."""

    def __init__(self) -> None:
        self.codec = load_codec("msgpack")
        self.batches: list[list[int]] = []

    def send_bytes(self, data: bytes) -> None:
        if data == SHUTDOWN:  # close() tells the worker to finish
            return
        self.batches.append([work_id for work_id, _ in self.codec.decode_records(data)])

    @property
    def sent(self) -> list[int]:
        return [work_id for batch in self.batches for work_id in batch]


def recording(engine: ProcessEngine) -> list[RecordingPipe]:
    """Give each worker of `engine` (not started) a RecordingPipe and mark it ready."""
    pipes = []
    for worker in engine._workers:
        pipe = RecordingPipe()
        worker.conn, worker.ready = cast(Connection, pipe), True
        pipes.append(pipe)
    return pipes


def keyed(key: bytes, first_id: int, count: int) -> list[WorkItem[object]]:
    """`count` items of one key, offsets (and work ids) first_id onwards."""
    return [
        WorkItem(i, ("t", 0, key), Record("t", 0, i, key, b"v"), None, 0.0)
        for i in range(first_id, first_id + count)
    ]


def test_a_workers_records_go_out_in_submission_order_within_its_window(
    engines: list[Engine],
) -> None:
    engine = process_engine(flaky, engines)
    (pipe,) = recording(engine)
    window = engine.max_outstanding
    # Runs of one lane, as the control plane submits them when one lane alone has records.
    items = keyed(b"a", 0, 3) + keyed(b"b", 3, window) + keyed(b"c", 3 + window, 3)
    engine.submit(items)
    assert pipe.sent == [item.id for item in items[:window]]
    # Results free the window; the rest follow in order.
    worker = engine._workers[0]
    with worker.lock:
        worker.outstanding.clear()
    engine._pump(worker)
    assert pipe.sent == [item.id for item in items]


def test_a_lane_at_its_cap_leaves_room_for_other_lanes(engines: list[Engine]) -> None:
    """A lane may have max_in_flight_per_lane records in flight, and they may reach the worker
    one after the other: the window stays twice that, so the next lane's records still go."""
    cap = 300  # twice it is above the window of 2 pipe messages (2 x 256) and 4 x the threads
    engine = process_engine(flaky, engines, max_in_flight_per_lane=cap)
    (pipe,) = recording(engine)
    assert engine.max_outstanding == 2 * cap
    items = keyed(b"stuck", 0, cap) + keyed(b"other", cap, 3)
    engine.submit(items)
    assert pipe.sent == [item.id for item in items]


@pytest.mark.parametrize(
    ("options", "window"),
    [
        ({}, 512),  # 2 pipe messages of 256, above 4 x worker_concurrency and twice the cap (32)
        ({"ipc_batch_size": 64}, 128),  # 2 pipe messages
        ({"worker_concurrency": 200}, 800),  # 4 per runner thread
        ({"max_in_flight_per_lane": 300}, 600),
        ({"max_in_flight_per_lane": 300, "ordering": "unordered"}, 512),  # no lanes
        ({"max_in_flight_per_lane": 300, "batch_size": 10}, 512),  # items are batches
    ],
)
def test_the_window_is_several_messages_and_twice_the_lane_cap_where_lanes_are_capped(
    options: dict[str, Any], window: int
) -> None:
    config = engine_config("process", **{"worker_concurrency": 16, **options})
    assert outstanding_window(config) == window


def test_unordered_records_are_dealt_round_robin_across_submits(engines: list[Engine]) -> None:
    engine = process_engine(flaky, engines, workers=2, ordering="unordered")
    first, second = recording(engine)
    engine.submit(make_items(3, keys=4, ordering="unordered", first_id=1))
    engine.submit(make_items(3, keys=4, ordering="unordered", first_id=4))
    assert (first.sent, second.sent) == ([1, 3, 5], [2, 4, 6])


class ResultPipe:
    """Stands in for the worker's end of the pipe: decodes each result batch sent."""

    def __init__(self) -> None:
        self.codec = load_codec("msgpack")
        self.lock = threading.Lock()
        self.ids: list[int] = []

    def send_bytes(self, data: bytes) -> None:
        results = self.codec.decode_results(data)
        with self.lock:
            self.ids.extend(result.work_id for result in results)


def test_the_result_sender_sends_every_result_once_and_a_lone_one_at_once() -> None:
    pipe = ResultPipe()
    sender = ResultSender(cast(Connection, pipe), load_codec("msgpack"), 7, 0.0005)
    threads, each = 8, 2000

    def runner(index: int) -> None:
        for n in range(each):
            sender.report(Report(index * each + n, Outcome.SUCCEEDED, 1, 0.0))

    pool = [threading.Thread(target=runner, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wait_until(lambda: len(pipe.ids) == threads * each, "every result to be sent")
    # A lone result goes out with no other result behind it to fill the batch.
    sender.report(Report(-1, Outcome.FAILED, 2, 0.0, "boom"))
    wait_until(lambda: -1 in pipe.ids, "the lone result to be sent")
    sender.close()
    assert sorted(pipe.ids) == [-1, *range(threads * each)]
