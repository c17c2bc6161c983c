"""The `cpu` workload: a SHA-256 chain of `--worker-cpu-iterations` over the record value.

The same sync handler for every engine: the async engine runs it in its thread pool, because a
coroutine would hold the event loop for the whole chain, and the native kernel (bench/cpu_kernel.py)
releases the GIL in threads. Its service time is measured on this machine at set-up.
"""

from __future__ import annotations

import functools
from typing import Any

from bench import cpu_kernel
from bench.workloads.base import (
    CalibratedWorkload,
    Handler,
    best_seconds_per_call,
    wants_coroutine,
)
from bench.workloads.payload import make_value


def cpu_sync(iterations: int, record: Any) -> None:
    cpu_kernel.sha256_chain(record.value or b"", iterations)


def measure_cpu_service_time(
    iterations: int, rounds: int = 5, round_seconds: float = 0.05
) -> float:
    """Seconds per record of the cpu workload on one core, with the bench's own payload.

    Measured at start so the bound of the cpu workload reflects this machine and this kernel
    (base.best_seconds_per_call says how).
    """
    call = functools.partial(cpu_kernel.sha256_chain, make_value(0), iterations)
    return best_seconds_per_call(call, rounds, round_seconds)


class CpuWorkload(CalibratedWorkload):
    name = "cpu"
    summary = "SHA-256 chain of --worker-cpu-iterations per record"

    def given_service_ms(self) -> float | None:
        return self.settings.cpu_service_ms

    def measure_service_s(self) -> float:
        return measure_cpu_service_time(self.settings.cpu_iterations)

    def handler(self, engine: str) -> Handler:
        wants_coroutine(engine)  # validates the engine; every engine gets the sync chain
        return functools.partial(cpu_sync, self.settings.cpu_iterations)

    @property
    def releases_gil(self) -> bool:
        return str(cpu_kernel.IMPLEMENTATION) == "native"

    def describe(self) -> str | None:
        seconds = self.service_time_s()
        return (
            f"cpu workload: {seconds * 1000:.3f} ms per record on one core ({self.source()}, "
            f"{cpu_kernel.IMPLEMENTATION} kernel, {self.settings.cpu_iterations} "
            f"iterations) -> {1 / seconds:,.0f} records/s/core"
        )

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "cpu_kernel_releases_gil": self.releases_gil}
