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
    Handler,
    Workload,
    WorkloadSettings,
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


class CpuWorkload(Workload):
    name = "cpu"
    summary = "SHA-256 chain of --worker-cpu-iterations per record"
    cpu_bound = True

    def __init__(self, settings: WorkloadSettings) -> None:
        super().__init__(settings)
        self._service_s: float | None = None

    def set_up(self) -> None:
        given = self.settings.cpu_service_ms
        # Given (--cpu-service-ms): every mode of one container run shares the driver's one
        # measurement, so their bounds and efficiencies compare.
        if given is not None:
            self._service_s = given / 1000
        else:
            self._service_s = measure_cpu_service_time(self.settings.cpu_iterations)

    def handler(self, engine: str) -> Handler:
        wants_coroutine(engine)  # validates the engine; every engine gets the sync chain
        return functools.partial(cpu_sync, self.settings.cpu_iterations)

    def service_time_s(self) -> float:
        if self._service_s is None:
            raise RuntimeError("the cpu workload's service time is measured by set_up(): call it")
        return self._service_s

    @property
    def releases_gil(self) -> bool:
        return str(cpu_kernel.IMPLEMENTATION) == "native"

    def engine_options(self, cores: int) -> dict[str, int]:
        # The GIL-free kernel wants about two threads per core: one hashing while the other
        # waits for the GIL to report. Measured on 2 cores (20,000 records, 500 iterations):
        # async with 32 threads 1.2x baseline, 2 threads 1.6x, 4 threads 1.7x; process with
        # 16 threads per worker 1.66x, 2 threads 1.78x. Each engine reads only its own option.
        return {"concurrency": 2 * cores, "worker_concurrency": 2}

    def describe(self) -> str | None:
        seconds = self.service_time_s()
        return (
            f"cpu workload: {seconds * 1000:.3f} ms per record on one core ({self._source()}, "
            f"{cpu_kernel.IMPLEMENTATION} kernel, {self.settings.cpu_iterations} "
            f"iterations) -> {1 / seconds:,.0f} records/s/core"
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "cpu_service_ms": self._service_s * 1000 if self._service_s else None,
            "cpu_service_source": self._source() if self._service_s else None,
            "cpu_kernel_releases_gil": self.releases_gil,
        }

    def _source(self) -> str:
        """Where the service time comes from: `given` (--cpu-service-ms) or `measured`."""
        return "measured" if self.settings.cpu_service_ms is None else "given"
