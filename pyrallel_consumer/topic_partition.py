"""`TopicPartition`: one partition of a topic, as the public API names it (callbacks, stats)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class TopicPartition(NamedTuple):
    """One partition of a topic: what `on_assign`/`on_revoke` receive and `stats()` keys its
    partitions by. A named tuple, so `topic, partition = tp` works; `str()` gives the
    "topic[partition]" form the metrics labels and the bench's JSON use. Not
    `confluent_kafka.TopicPartition` (which carries an offset and is mutable)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


def listed(partitions: Iterable[tuple[str, int]]) -> str:
    """Partitions in the "topic[partition]" form, comma-separated ("orders[0], orders[3]"):
    how the log lines name them, whether they hold TopicPartitions or (topic, partition)
    pairs."""
    return ", ".join(f"{topic}[{partition}]" for topic, partition in partitions)
