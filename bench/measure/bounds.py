"""The theoretical throughput bound of a run (design.md, "Performance thinking").

bound_tps = parallelism / service_time, where parallelism is the smallest of
- the usable concurrency of the ordering: distinct keys (key), partitions (partition), or no
  limit (unordered);
- max_in_flight;
- the engine's slots and, for CPU work, the cores that can run the kernel at once; both come
  from the library's engine registry (pyrallel_consumer/engines/registry.py).

Batch mode (`batch_size` b): the parallelism counts handler calls, each of b records and taking
`service_time_s` (one call's time); a call needs b records in flight, so max_in_flight allows
max_in_flight // b calls, and each call holds at least one key (or partition) of its own. So
bound_tps = calls at once x b / call time.

Efficiency = measured throughput / bound. The bound ignores the coordinating loop's own cost,
which is exactly what efficiency below 1 then shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyrallel_consumer.engines.registry import Capacity, engine_spec


@dataclass(frozen=True)
class EngineShape:
    """How much work an engine can run at once (resolved defaults, not None)."""

    engine: str
    max_in_flight: int
    concurrency: int  # async: concurrent handler calls / thread-pool size
    workers: int  # process: worker processes
    worker_concurrency: int  # process: records per worker

    def capacity(self) -> Capacity:
        return Capacity(self.max_in_flight, self.concurrency, self.workers, self.worker_concurrency)

    def slots(self) -> int:
        """Records the engine can handle at once."""
        return engine_spec(self.engine).slots(self.capacity())

    def cpu_cores(self, cores: int, releases_gil: bool) -> int:
        """Cores that can execute CPU-bound handler code at once with this engine."""
        return engine_spec(self.engine).cpu_cores(self.capacity(), cores, releases_gil)


def usable_concurrency(
    ordering: str, *, num_keys: int, num_partitions: int, num_messages: int
) -> int:
    """How many records the ordering lets run at once (never more than there are records)."""
    if ordering == "key":
        limit = num_keys
    elif ordering == "partition":
        limit = num_partitions
    elif ordering == "unordered":
        limit = num_messages
    else:
        raise ValueError(f"ordering must be key, partition or unordered; got {ordering!r}")
    return max(1, min(limit, num_messages))


@dataclass(frozen=True)
class Bound:
    parallelism: int
    service_time_s: float
    bound_tps: float


def compute_bound(
    shape: EngineShape,
    *,
    ordering: str,
    num_keys: int,
    num_partitions: int,
    num_messages: int,
    service_time_s: float,
    cpu_bound: bool = False,
    cores: int = 1,
    releases_gil: bool = False,
    batch_size: int | None = None,
) -> Bound:
    """The bound of one run; `ordering` is what the engine really guarantees (baseline processes
    one record at a time, which satisfies every ordering, and its slots are 1 anyway).

    `cpu_bound`: the work needs a core per record in progress (bench.workloads' Workload
    .cpu_bound), so the `cores` the engine can run it on also limit the parallelism;
    `releases_gil`: whether threads can run it on several cores at once. `batch_size`: batch
    mode, with `service_time_s` the time of one call of `batch_size` records.
    """
    per_call = batch_size or 1
    limits = [
        usable_concurrency(
            ordering, num_keys=num_keys, num_partitions=num_partitions, num_messages=num_messages
        ),
        max(1, shape.max_in_flight // per_call),
        shape.slots(),
    ]
    if cpu_bound:
        limits.append(shape.cpu_cores(cores, releases_gil))
    parallelism = max(1, min(limits))
    bound_tps = parallelism * per_call / service_time_s if service_time_s > 0 else math.inf
    return Bound(parallelism, service_time_s, bound_tps)


def efficiency(throughput_tps: float, bound_tps: float) -> float:
    """Measured / bound; NaN (null in JSON) when either is unknown or the bound is infinite
    (a zero-work run has no meaningful bound)."""
    if not math.isfinite(throughput_tps) or not math.isfinite(bound_tps) or bound_tps <= 0:
        return math.nan
    return throughput_tps / bound_tps
