"""Legacy profiler runner: the benchmark with --profile always on.

    python -m bench.profile_benchmark_yappi [runner options]

Equivalent to `python -m bench.run_parallel_benchmark --profile ...`; every runner option is
accepted (e.g. --profile-clock cpu, --profile-top-n 30, --profile-process-workers). Kept so the
commands of the original benchmark document keep working.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file path (python bench/x.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run_parallel_benchmark import main as run_main


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(argv, force_profile=True, prog="python -m bench.profile_benchmark_yappi")


if __name__ == "__main__":
    sys.exit(main())
