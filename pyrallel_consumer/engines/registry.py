"""The engines by name: how to build each one and how much work it can run at once.

This is the one list of engines. The options' allowed values (`config.py`), the facade
(`consumer.py`) and the bench (CLI choices, theoretical bounds, report order, images) all derive
from it, so adding an engine means adding one entry here.

Engine modules are imported on first use (`EngineSpec.create`), so importing the registry costs
nothing and never pulls the process engine's multiprocessing machinery into a baseline run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyrallel_consumer.config import ConsumerConfig
    from pyrallel_consumer.engines.base import Engine, Handler

Hook = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Capacity:
    """What an engine was given to run work with (resolved values, never None).

    `concurrency`: handler calls at once of the async engine (coroutines or threads);
    `workers` x `worker_concurrency`: processes and records running at once in each, of the
    process engine. An engine uses only the fields that apply to it.
    """

    max_in_flight: int
    concurrency: int
    workers: int
    worker_concurrency: int


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """One engine: its name, where its class lives, and its capacity rules.

    `slots(capacity)`: records it can handle at once. `cpu_cores(capacity, cores,
    releases_gil)`: cores that can run CPU-bound handler code at once, given the machine's usable
    cores and whether the handler releases the GIL. Both feed the bench's theoretical bound
    (bench/README.md, "What is measured"): bound = min(usable concurrency, max_in_flight, slots,
    cpu cores for CPU work) / service time.
    """

    name: str
    summary: str
    module: str
    class_name: str
    accepts_coroutines: bool  # whether `async def` handlers may be given to it
    worker_processes: bool  # whether it runs handlers in worker processes (and takes their hooks)
    slots: Callable[[Capacity], int]
    cpu_cores: Callable[[Capacity, int, bool], int]
    options: tuple[str, ...] = ()  # the names of ENGINE_OPTIONS it reads

    def create(
        self,
        handler: Handler,
        config: ConsumerConfig,
        worker_init: Hook | None = None,
        worker_exit: Hook | None = None,
    ) -> Engine:
        """Import the engine's module and build it. The hooks run in each worker process, so only
        engines with `worker_processes` take them; ValueError for hooks given to another."""
        engine_class: Any = getattr(importlib.import_module(self.module), self.class_name)
        if self.worker_processes:
            engine: Engine = engine_class(
                handler, config, worker_init=worker_init, worker_exit=worker_exit
            )
            return engine
        for option, hook in (("worker_init", worker_init), ("worker_exit", worker_exit)):
            if hook is not None:
                takes = engines_where(lambda spec: spec.worker_processes)
                raise ValueError(
                    f"{option} runs in worker processes, which engine={self.name!r} does not "
                    f"have; use engine={takes} or drop {option}"
                )
        engine = engine_class(handler, config)
        return engine


# Options that only some engines read, and what each sets. config.py refuses one set, to other
# than its default, for an engine that does not read it: it would change nothing.
ENGINE_OPTIONS: Mapping[str, str] = {
    "concurrency": "how many handler calls the async engine runs at once",
    "workers": "how many worker processes the process engine starts",
    "worker_concurrency": "how many records each process worker runs at once",
    "ipc_batch_size": "how many records go to a process worker per message",
    "ipc_batch_max_wait_s": "how long a process worker waits to fill a message of results",
    "codec": "how records travel to the process workers",
}

ENGINES: Mapping[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec(
            name="baseline",
            worker_processes=False,
            summary="one record at a time on a helper thread, polling on (the reference)",
            module="pyrallel_consumer.engines.baseline",
            class_name="BaselineEngine",
            accepts_coroutines=False,
            slots=lambda capacity: 1,
            cpu_cores=lambda capacity, cores, releases_gil: 1,
        ),
        EngineSpec(
            name="async",
            worker_processes=False,
            summary="async def handlers on an event loop (uvloop), plain functions on threads",
            module="pyrallel_consumer.engines.asyncio_engine",
            class_name="AsyncEngine",
            accepts_coroutines=True,
            slots=lambda capacity: capacity.concurrency,
            # Threads run Python code one at a time unless the handler releases the GIL.
            cpu_cores=lambda capacity, cores, releases_gil: (
                min(cores, capacity.concurrency) if releases_gil else 1
            ),
            options=("concurrency",),
        ),
        EngineSpec(
            name="process",
            worker_processes=True,
            summary="worker processes; records travel as msgpack batches",
            module="pyrallel_consumer.engines.process",
            class_name="ProcessEngine",
            accepts_coroutines=True,
            slots=lambda capacity: capacity.workers * capacity.worker_concurrency,
            cpu_cores=lambda capacity, cores, releases_gil: min(cores, capacity.workers),
            options=(
                "workers",
                "worker_concurrency",
                "ipc_batch_size",
                "ipc_batch_max_wait_s",
                "codec",
            ),
        ),
    )
}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)


def engines_where(holds: Callable[[EngineSpec], bool]) -> str:
    """The names of the engines whose spec `holds`, as an error message offers them:
    "'async' or 'process'"."""
    return " or ".join(repr(name) for name, spec in ENGINES.items() if holds(spec))


def engine_spec(name: str) -> EngineSpec:
    """The spec of engine `name`; ValueError naming the engines there are."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(
            f"engine must be one of {', '.join(map(repr, ENGINE_NAMES))}; got {name!r}"
        ) from None
