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
