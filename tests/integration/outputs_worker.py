"""Run by test_outputs_crash and test_exactly_once_crash in a subprocess: a ParallelConsumer
(async engine, key order, outputs=True; exactly once when a TRANSACTIONAL_ID is given) whose
handler returns one output per record (outputs_support.py) and appends "partition offset" to a
file once it returned, one flushed line per record.

    python outputs_worker.py BOOTSTRAP TOPIC GROUP HANDLED_FILE OUT_TOPIC [TRANSACTIONAL_ID]

Runs until SIGKILL (the crash) or its input is done (`until_end`).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from outputs_support import OUT_TOPIC_ENV, output_of
from support import worker_kafka_config

from pyrallel_consumer import Output, ParallelConsumer, Record


def main(
    bootstrap: str,
    topic: str,
    group: str,
    handled: str,
    out_topic: str,
    transactional_id: str | None = None,
) -> int:
    os.environ[OUT_TOPIC_ENV] = out_topic
    out = open(handled, "a", buffering=1)  # noqa: SIM115  # lives as long as the process

    async def handle(record: Record) -> Output:
        await asyncio.sleep(random.random() * 0.002)
        out.write(f"{record.partition} {record.offset}\n")
        return output_of(record)

    consumer = ParallelConsumer(
        worker_kafka_config(bootstrap, group),
        topics=[topic],
        handler=handle,
        engine="async",
        ordering="key",
        commit_interval_s=0.2,
        outputs=True,
        transactional_id=transactional_id,
    )
    consumer.run(until_end=True)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
