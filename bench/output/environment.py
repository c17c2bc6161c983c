"""Where and with what the benchmark ran (the results file's metadata), so results compare
across machines and commits."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import cpu_kernel
from bench.interpreter import interpreter_metadata
from bench.output.jsonlib import JSON_LIBRARY
from pyrallel_consumer.config import usable_cores


def _git_commit() -> str | None:
    """HEAD of the checkout, or $PYRALLEL_GIT_COMMIT (set by the images, which have no .git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("PYRALLEL_GIT_COMMIT")
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return os.environ.get("PYRALLEL_GIT_COMMIT")
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _codec_implementation() -> str:
    try:
        from pyrallel_consumer.codec import IMPLEMENTATION
    except ImportError:
        return "unavailable"
    return str(IMPLEMENTATION)


def _structures_implementation() -> str:
    """Which record-tracking structures the control plane runs with (native.py): "native",
    "pure" (PYRALLEL_NATIVE=0 or not built) or "mixed"."""
    try:
        from pyrallel_consumer.native import implementation
    except ImportError:
        return "unavailable"
    return implementation()


def _kafka_versions() -> dict[str, str]:
    import confluent_kafka

    def first(value: object) -> str:  # version()/libversion() give (str, int) tuples
        return str(value[0]) if isinstance(value, tuple) else str(value)

    return {
        "confluent_kafka": getattr(confluent_kafka, "__version__", None)
        or first(confluent_kafka.version()),
        "librdkafka": first(confluent_kafka.libversion()),
    }


def _event_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    return f"uvloop {uvloop.__version__}"


def environment_metadata() -> dict[str, Any]:
    """The machine, the versions and the native modules in use (plain JSON values).

    `interpreter` is bench.interpreter's record (version, implementation, free-threaded build,
    GIL enabled), taken after the extension modules above are imported: a free-threaded build
    turns the GIL on when it imports one not declared safe without it. `json_library`: what
    writes the results file (bench.output.jsonlib)."""
    kafka = _kafka_versions()
    codec, structures = _codec_implementation(), _structures_implementation()
    event_loop = _event_loop()
    return {
        "utc_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "interpreter": interpreter_metadata(),
        **kafka,
        "codec": codec,
        "structures": structures,
        "cpu_kernel": str(cpu_kernel.IMPLEMENTATION),
        "event_loop": event_loop,
        "json_library": JSON_LIBRARY,
        "cpu_model": _cpu_model(),
        "cores": usable_cores(),
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "host": platform.node(),
    }
