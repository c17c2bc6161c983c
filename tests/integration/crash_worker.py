"""Run by test_consumer_crash in a subprocess: a ParallelConsumer (async engine, key order) that
appends every handled record as "partition offset" to a file, one flushed line per record.

    python crash_worker.py BOOTSTRAP TOPIC GROUP OUTPUT_FILE [STUCK_PARTITION STUCK_OFFSET]

Runs until SIGKILL (the crash) or SIGTERM (a clean stop: drain, commit, close). With a stuck
record, its handler call never returns: the run cannot finish on its own, and the records of
the other keys above it complete, so the commits carry them in the metadata.
"""

from __future__ import annotations

import asyncio
import random
import sys

from support import worker_kafka_config

from pyrallel_consumer import ParallelConsumer, Record


def main(bootstrap: str, topic: str, group: str, output: str, *stuck_at: str) -> int:
    out = open(output, "a", buffering=1)  # noqa: SIM115  # lives as long as the process
    stuck = tuple(map(int, stuck_at)) if stuck_at else None

    async def handle(record: Record) -> None:
        if (record.partition, record.offset) == stuck:
            await asyncio.Event().wait()  # until the kill
        await asyncio.sleep(0.001 + random.random() * 0.002)
        out.write(f"{record.partition} {record.offset}\n")
        out.flush()

    consumer = ParallelConsumer(
        worker_kafka_config(bootstrap, group),
        topics=[topic],
        handler=handle,
        engine="async",
        ordering="key",
        commit_interval_s=0.2,
    )
    consumer.run()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
