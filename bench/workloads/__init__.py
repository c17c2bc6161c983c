"""The registry of bench workloads: the one list the CLI choices, bounds, report and results
derive from. Adding a workload means adding a Workload subclass (base.py) and one entry here.

    from bench.workloads import WORKLOADS, WorkloadSettings

    with WORKLOADS["io"](WorkloadSettings(io_sleep_ms=5)) as io:
        handler = io.handler("async")          # picklable; coroutine or plain per engine
        seconds = io.service_time_s()          # the bound's denominator
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.workloads.base import COROUTINE_ENGINES, Handler, Workload, WorkloadSettings
from bench.workloads.bulk import BulkWorkload
from bench.workloads.cpu import CpuWorkload
from bench.workloads.io import IoWorkload
from bench.workloads.pycpu import PyCpuWorkload
from bench.workloads.sleep import SleepWorkload

# In the order `--workload all` runs them (the benchmark document's order).
WORKLOADS: Mapping[str, type[Workload]] = {
    workload.name: workload
    for workload in (SleepWorkload, CpuWorkload, PyCpuWorkload, IoWorkload, BulkWorkload)
}
WORKLOAD_NAMES: tuple[str, ...] = tuple(WORKLOADS)
# What `--workload all` runs: the benchmark document's workloads. `bulk` is for batch mode
# (--batch-size) and `pycpu` shows the GIL (pycpu.py), so they run only when named.
ALL_WORKLOADS: tuple[str, ...] = ("sleep", "cpu", "io")


def workload_class(name: str) -> type[Workload]:
    """The workload called `name`; ValueError naming the workloads there are."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(
            f"workload must be one of {', '.join(WORKLOAD_NAMES)}; got {name!r}"
        ) from None


__all__ = [
    "ALL_WORKLOADS",
    "COROUTINE_ENGINES",
    "WORKLOADS",
    "WORKLOAD_NAMES",
    "Handler",
    "Workload",
    "WorkloadSettings",
    "workload_class",
]
