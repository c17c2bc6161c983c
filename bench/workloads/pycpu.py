"""The `pycpu` workload: pure-Python CPU work, the kind the GIL serialises.

Each record's handler decodes the JSON object of its value (the standard library's json; the
value's shape is in bench.workloads.payload) and then does `--worker-pycpu-iterations` steps of
integer arithmetic in plain Python (a linear congruential generator seeded from the object).
No step runs C code that releases the GIL, so what it shows is what the GIL does to threads:

- baseline runs one record at a time: the reference;
- async runs plain functions on its thread pool: with the GIL, one thread runs Python code at
  a time, so it gets about one core however many threads it has (the bound counts one);
- process runs each worker in its own interpreter with its own GIL: one core per worker.

On a free-threaded Python (3.13t and later, GIL off at run time) the async engine's threads run
this on every core, and the bound counts them (releases_gil). This is the workload that changes.
The `cpu` workload is its counterpart: a native kernel that releases the GIL on every Python.

The same sync handler for every engine, as for `cpu`: on the async engine a coroutine would hold
the event loop for the whole computation. Its service time is measured at set-up, or given with
`--pycpu-service-ms` (the same figure for every mode of a run).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from bench.interpreter import gil_enabled
from bench.workloads.base import (
    CalibratedWorkload,
    Handler,
    best_seconds_per_call,
    wants_coroutine,
)
from bench.workloads.payload import json_part, make_value

# A 31-bit linear congruential generator (the constants of C's classic rand()): one multiply,
# one add and one mask per step, all on Python ints.
_MULTIPLIER = 1103515245
_INCREMENT = 12345
_MASK = 0x7FFFFFFF


def pycpu_value(value: bytes, iterations: int) -> int:
    """Decode `value`'s JSON object and run `iterations` generator steps seeded from it; returns
    the last number (0 <= n < 2**31), the same for the same value on every interpreter.

    Raises json.JSONDecodeError for a value that is not the bench's (make_value), KeyError or
    TypeError for a JSON object of another shape.
    """
    document = json.loads(json_part(value))
    state = int(document["seq"]) + len(document["pad"])
    for _ in range(iterations):
        state = (state * _MULTIPLIER + _INCREMENT) & _MASK
    return state


def pycpu_sync(iterations: int, record: Any) -> None:
    pycpu_value(record.value or b"", iterations)


def measure_pycpu_service_time(
    iterations: int, rounds: int = 5, round_seconds: float = 0.05
) -> float:
    """Seconds per record of the pycpu workload on one core, with the bench's own payload
    (base.best_seconds_per_call says how)."""
    call = functools.partial(pycpu_value, make_value(0), iterations)
    return best_seconds_per_call(call, rounds, round_seconds)


class PyCpuWorkload(CalibratedWorkload):
    name = "pycpu"
    summary = "JSON decode and --worker-pycpu-iterations steps of pure-Python arithmetic"

    def given_service_ms(self) -> float | None:
        return self.settings.pycpu_service_ms

    def measure_service_s(self) -> float:
        return measure_pycpu_service_time(self.settings.pycpu_iterations)

    def handler(self, engine: str) -> Handler:
        wants_coroutine(engine)  # validates the engine; every engine gets the sync handler
        return functools.partial(pycpu_sync, self.settings.pycpu_iterations)

    @property
    def releases_gil(self) -> bool:
        # Pure Python runs on several threads at once only where there is no GIL to hold.
        return not gil_enabled()

    def describe(self) -> str | None:
        seconds = self.service_time_s()
        return (
            f"pycpu workload: {seconds * 1000:.3f} ms per record on one core ({self.source()}, "
            f"{self.settings.pycpu_iterations} iterations, GIL "
            f"{'on' if gil_enabled() else 'off'}) -> {1 / seconds:,.0f} records/s/core"
        )

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "pycpu_releases_gil": self.releases_gil}
