"""Run by test_batches_faults in a subprocess: a ParallelConsumer in batch mode (async engine,
key order, batches of 100) that appends every record of a finished call as "partition offset"
to a file, one flushed write per call.

    python batch_crash_worker.py BOOTSTRAP TOPIC GROUP OUTPUT_FILE

Runs until SIGKILL (the crash) or SIGTERM (a clean stop: drain, commit, close).
"""

from __future__ import annotations

import asyncio
import random
import sys

from support import worker_kafka_config

from pyrallel_consumer import ParallelConsumer, Record


def main(bootstrap: str, topic: str, group: str, output: str) -> int:
    out = open(output, "a", buffering=1)  # noqa: SIM115  # lives as long as the process

    async def handle(records: list[Record]) -> None:
        await asyncio.sleep(0.02 + random.random() * 0.02)
        out.write("".join(f"{r.partition} {r.offset}\n" for r in records))
        out.flush()

    consumer = ParallelConsumer(
        worker_kafka_config(bootstrap, group),
        topics=[topic],
        handler=handle,
        engine="async",
        ordering="key",
        batch_size=100,
        concurrency=4,  # with 20-40 ms calls, slow enough that the kill lands mid-run
        commit_interval_s=0.2,
    )
    consumer.run()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
