"""Run by test_faults_process_signals: a process-engine consumer that a terminal's Ctrl-C
(SIGINT to the whole process group) should stop cleanly. Each handler call appends
"offset" to a trace file when it starts, so a record handled twice shows up twice.

    python sigint_script.py BOOTSTRAP TOPIC GROUP

Prints "worker_restarts=N completed=N" when run() returns.
"""

from __future__ import annotations

import sys
import time

from faults_support import trace

from pyrallel_consumer import ParallelConsumer, Record


def handle(record: Record) -> None:
    trace("start", str(record.offset))
    time.sleep(0.2)


def main(bootstrap: str, topic: str, group: str) -> int:
    consumer = ParallelConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        },
        topics=[topic],
        handler=handle,
        engine="process",
        ordering="unordered",
        workers=2,
        worker_concurrency=4,
        max_in_flight=16,  # so the drain after Ctrl-C is short
        commit_interval_s=0.2,
    )
    completed = consumer.run()
    restarts = consumer.stats()["engine_info"]["worker_restarts"]
    print(f"worker_restarts={restarts} completed={completed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
