"""Batch mode over the process engine's pipe: a batch's records travel one after the other
under its work id, in both codecs, and the worker turns them back into one work item each."""

from __future__ import annotations

import pytest

from pyrallel_consumer.codec import available_codecs, load_codec
from pyrallel_consumer.engines.process_worker import _batch_items
from pyrallel_consumer.record import Record


def records(first: int, count: int) -> list[Record]:
    return [Record("t", 0, offset, b"k", b"v") for offset in range(first, first + count)]


@pytest.mark.parametrize("name", available_codecs())
def test_batches_travel_as_units_and_come_back_whole(name: str) -> None:
    codec = load_codec(name)
    batches = {7: records(0, 3), 8: records(3, 1), 12: records(4, 100)}
    wire = codec.encode_records(
        [(work_id, record) for work_id, batch in batches.items() for record in batch]
    )
    items = _batch_items(codec.decode_records(wire))
    assert [item.id for item in items] == [7, 8, 12]
    for item in items:
        assert item.lane is None  # the parent already keeps lanes across batches
        assert item.record == batches[item.id]  # type: ignore[comparison-overlap]
