"""CPU sets of the containers: parsed, checked against the engine's CPUs, and defaults derived
from them so that the broker and the benchmark never share a CPU when there are two or more.

A CPU set is Docker's `--cpuset-cpus` syntax: "0", "0-2", "0,2-3".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuSets:
    """The CPU sets of one run: `bench` for every mode's container, `broker` for the broker."""

    bench: str
    broker: str


def parse_cpuset(text: str) -> list[int]:
    """CPU numbers of a CPU set, sorted and without repeats. Raises ValueError on bad syntax."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise ValueError(
                f"CPU set {text!r}: {part!r} is not a CPU number or range (e.g. 0-1,3)"
            ) from None
        if low < 0 or high < low:
            raise ValueError(f"CPU set {text!r}: {part!r} is not an ascending range")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def format_cpuset(cpus: Sequence[int]) -> str:
    """The shortest CPU set text for `cpus`: [0, 1, 2, 5] -> "0-2,5"."""
    if not cpus:
        raise ValueError("a CPU set needs at least one CPU")
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = ordered[0]
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


def default_cpusets(engine_cpus: int) -> CpuSets:
    """Split CPUs 0..engine_cpus-1: the broker gets the last quarter (at least one), the modes
    the rest. One CPU: both share it (numbers then mix the broker's load in; said by the caller).

    2 CPUs -> bench "0", broker "1"; 4 -> "0-2" / "3"; 8 -> "0-5" / "6-7"."""
    if engine_cpus < 1:
        raise ValueError(f"the engine reports {engine_cpus} CPUs")
    if engine_cpus == 1:
        return CpuSets(bench="0", broker="0")
    broker = max(1, engine_cpus // 4)
    cpus = list(range(engine_cpus))
    return CpuSets(bench=format_cpuset(cpus[:-broker]), broker=format_cpuset(cpus[-broker:]))


def check_cpuset(name: str, text: str, engine_cpus: int) -> str:
    """`text` normalised, or ValueError naming `name` when it asks for CPUs the engine lacks
    (Docker would fail later with "Requested CPUs are not available")."""
    try:
        cpus = parse_cpuset(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    missing = [cpu for cpu in cpus if cpu >= engine_cpus]
    if missing:
        raise ValueError(
            f"{name}={text!r} asks for CPU {format_cpuset(missing)}, but the container engine has "
            f"{engine_cpus} CPUs (0-{engine_cpus - 1}); leave it unset for a default derived "
            "from them"
        )
    return format_cpuset(cpus)


def resolve_cpusets(bench: str | None, broker: str | None, engine_cpus: int) -> CpuSets:
    """The caller's CPU sets where given (checked), the derived defaults elsewhere."""
    defaults = default_cpusets(engine_cpus)
    return CpuSets(
        bench=check_cpuset("BENCH_CPUSET", bench, engine_cpus) if bench else defaults.bench,
        broker=check_cpuset("BROKER_CPUSET", broker, engine_cpus) if broker else defaults.broker,
    )
