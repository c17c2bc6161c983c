"""Run by test_faults_process_signals: starts the process engine at module level, without the
`if __name__ == "__main__":` guard (the mistake under test), so every spawned worker re-imports
this file and reaches the same run() call.

    python unguarded_script.py BOOTSTRAP TOPIC GROUP
"""

import sys

from pyrallel_consumer import ParallelConsumer, Record


def handle(record: Record) -> None:
    """Does nothing: the script never gets as far as handling records."""


consumer = ParallelConsumer(
    {"bootstrap.servers": sys.argv[1], "group.id": sys.argv[3], "auto.offset.reset": "earliest"},
    topics=[sys.argv[2]],
    handler=handle,
    engine="process",
    workers=2,
)
consumer.run(timeout=120)
print("run() returned")
