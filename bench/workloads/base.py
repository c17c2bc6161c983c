"""What a bench workload is: the per-record work every mode runs, and what its bound needs.

A workload object is built from the `--worker-*` settings without side effects, set up once per
invocation (a context manager: start a server, measure a cost), then asked for its handler for
each engine and its service time for the theoretical bound (bench/measure/bounds.py).
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

from pyrallel_consumer.engines.registry import engine_spec

Handler = Callable[[Any], Any]

# Engines whose handlers the bench writes as coroutines (`async def`): the async engine runs them
# on its event loop. The process engine accepts coroutines too, but the benchmark document has
# its workers block (time.sleep, a blocking socket), so it gets the plain functions, as baseline.
COROUTINE_ENGINES = frozenset({"async"})


def wants_coroutine(engine: str) -> bool:
    """Whether `engine` gets the `async def` flavour; ValueError for an unknown engine."""
    engine_spec(engine)  # validates the name, listing the engines there are
    return engine in COROUTINE_ENGINES


@dataclass(frozen=True)
class WorkloadSettings:
    """The per-record work's knobs, from the `--worker-*` options."""

    sleep_ms: float = 5.0
    cpu_iterations: int = 1000
    io_sleep_ms: float = 5.0
    bulk_fixed_ms: float = 5.0
    bulk_per_record_ms: float = 0.05
    cpu_service_ms: float | None = None  # the cpu workload's time per record; None: measure it
    pycpu_iterations: int = 5000
    pycpu_service_ms: float | None = None  # the pycpu workload's; None: measure it


def best_seconds_per_call(
    call: Callable[[], object], rounds: int = 5, round_seconds: float = 0.05
) -> float:
    """Seconds one `call()` takes on this core: the best of `rounds` rounds of at least
    `round_seconds` and 3 calls each, after one warm-up call (imports, caches).

    The calibration of the CPU-bound workloads' service time. The fastest round is kept: on a
    noisy machine it is the closest to the work's real cost, and a bound must not be lowered
    by a neighbour's load.
    """
    call()
    best = float("inf")
    for _ in range(rounds):
        calls = 0
        start = time.perf_counter()
        while True:
            call()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= round_seconds and calls >= 3:
                break
        best = min(best, elapsed / calls)
    return best


def for_each(handler: Handler, records: list[Any]) -> None:
    for record in records:
        handler(record)


async def for_each_async(handler: Handler, records: list[Any]) -> None:
    for record in records:
        await handler(record)


class Workload(ABC):
    """One kind of per-record work (sleep, cpu, io).

    Owned by the thread that runs the benchmark. `handler()` returns module-level functions
    bound with functools.partial, so the process engine can pickle them into its workers.
    """

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for --help and the docs
    # CPU-bound work also needs a core per record in progress: the bound then counts the cores
    # an engine can run it on (pyrallel_consumer.engines.registry, EngineSpec.cpu_cores).
    cpu_bound: ClassVar[bool] = False

    def __init__(self, settings: WorkloadSettings) -> None:
        self.settings = settings

    def set_up(self) -> None:
        """Prepare what the handlers need, before the first run (default: nothing)."""
        return None

    def tear_down(self) -> None:
        """Release what set_up() took (default: nothing); safe to call twice."""
        return None

    def after_run(self) -> None:
        """Drop what one run left behind (pooled connections of its event loop); default none."""
        return None

    def __enter__(self) -> Self:
        self.set_up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.tear_down()

    @abstractmethod
    def handler(self, engine: str) -> Handler:
        """The picklable handler `engine` runs for each record."""

    @abstractmethod
    def service_time_s(self) -> float:
        """Seconds one record takes on an idle, dedicated executor (the bound's denominator)."""

    def batch_handler(self, engine: str) -> Handler:
        """The picklable handler `engine` runs for each batch (`--batch-size`): by default the
        per-record work for each record of the list in turn."""
        per_record = self.handler(engine)
        return functools.partial(
            for_each_async if wants_coroutine(engine) else for_each, per_record
        )

    def call_time_s(self, records: int) -> float:
        """Seconds one handler call with `records` records takes (batch mode's bound); by
        default the records one after the other."""
        return records * self.service_time_s()

    @property
    def releases_gil(self) -> bool:
        """Whether threads can run this work on several cores at once (CPU-bound work only)."""
        return False

    def engine_options(self, cores: int) -> dict[str, int]:
        """ParallelConsumer options that suit this work better than the library's defaults,
        given the usable cores; the user's options win. Default: none."""
        return {}

    def describe(self) -> str | None:
        """A line for the console after set_up(): what was measured (default: none)."""
        return None

    def metadata(self) -> dict[str, Any]:
        """What the results file records about this workload, also when it was not run."""
        return {}


class CalibratedWorkload(Workload):
    """CPU-bound work whose service time is measured once on one core at set-up, or given
    (`--<name>-service-ms`: every mode of one container run then shares the driver's one
    measurement, so their bounds and efficiencies compare)."""

    cpu_bound = True

    def __init__(self, settings: WorkloadSettings) -> None:
        super().__init__(settings)
        self._service_s: float | None = None

    @abstractmethod
    def given_service_ms(self) -> float | None:
        """The service time given on the command line, in milliseconds; None: measure it."""

    @abstractmethod
    def measure_service_s(self) -> float:
        """Seconds per record on one core, measured now."""

    def set_up(self) -> None:
        given = self.given_service_ms()
        self._service_s = given / 1000 if given is not None else self.measure_service_s()

    def service_time_s(self) -> float:
        if self._service_s is None:
            raise RuntimeError(
                f"the {self.name} workload's service time is measured by set_up(): call it"
            )
        return self._service_s

    def engine_options(self, cores: int) -> dict[str, int]:
        # Threads that run the work want about two per core: one computing while the other
        # waits for the GIL to report. Measured on 2 cores with the cpu workload (20,000
        # records, 500 iterations): async with 32 threads 1.2x baseline, 2 threads 1.6x, 4
        # threads 1.7x; process with 16 threads per worker 1.66x, 2 threads 1.78x. Each engine
        # reads only its own option; pycpu takes the same so the two compare engine for engine.
        return {"concurrency": 2 * cores, "worker_concurrency": 2}

    def metadata(self) -> dict[str, Any]:
        service_s = self._service_s
        return {
            f"{self.name}_service_ms": service_s * 1000 if service_s is not None else None,
            f"{self.name}_service_source": self.source() if service_s is not None else None,
        }

    def source(self) -> str:
        """Where the service time comes from: `given` or `measured`."""
        return "measured" if self.given_service_ms() is None else "given"
