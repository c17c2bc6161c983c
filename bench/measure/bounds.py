"""The theoretical throughput bound of a run (design.md, "Performance thinking").

bound_tps = parallelism / service_time, where parallelism is the smallest of
- the usable concurrency of the ordering: distinct keys (key), partitions (partition), or no
  limit (unordered);
- max_in_flight;
- the engine's slots and, for CPU work, the cores that can run the kernel at once; both come
  from the library's engine registry (pyrallel_consumer/engines/registry.py).

With skewed keys or a stuck record the work is not evenly spread, so the run also lasts at least
as long as its longest chain, the records that must run one after another (the hottest key under
key order, the busiest partition under partition order, one record when unordered):

    bound_tps = records / max(total work / parallelism, longest chain's work)

where a stuck record adds (stuck time - service time) to the total work and to its chain. With
uniform keys the second term never exceeds the first, so the bound is parallelism / service time.

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


@dataclass(frozen=True)
class Chains:
    """How the records group into chains that run one record at a time (key or partition).

    `hottest`: records of the busiest chain; `stuck_extra_s`: how much longer than the service
    time the stuck record takes (0 without one); `stuck_chain`: records of its chain.
    """

    hottest: int
    stuck_extra_s: float = 0.0
    stuck_chain: int = 0


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
    chains: Chains | None = None,
) -> Bound:
    """The bound of one run; `ordering` is what the engine really guarantees (baseline processes
    one record at a time, which satisfies every ordering, and its slots are 1 anyway).

    `cpu_bound`: the work needs a core per record in progress (bench.workloads' Workload
    .cpu_bound), so the `cores` the engine can run it on also limit the parallelism;
    `releases_gil`: whether threads can run it on several cores at once; `chains`: the
    records' real spread (module docstring), None for an even spread and no stuck record.
    """
    limits = [
        usable_concurrency(
            ordering, num_keys=num_keys, num_partitions=num_partitions, num_messages=num_messages
        ),
        shape.max_in_flight,
        shape.slots(),
    ]
    if cpu_bound:
        limits.append(shape.cpu_cores(cores, releases_gil))
    parallelism = max(1, min(limits))
    if chains is None:
        bound_tps = parallelism / service_time_s if service_time_s > 0 else math.inf
        return Bound(parallelism, service_time_s, bound_tps)
    extra = chains.stuck_extra_s
    total_s = num_messages * service_time_s + extra
    hottest = chains.hottest if ordering != "unordered" else 1
    stuck_chain = chains.stuck_chain if ordering != "unordered" else 1
    chain_s = max(hottest * service_time_s, stuck_chain * service_time_s + extra if extra else 0.0)
    time_s = max(total_s / parallelism, chain_s)
    return Bound(parallelism, service_time_s, num_messages / time_s if time_s > 0 else math.inf)


def efficiency(throughput_tps: float, bound_tps: float) -> float:
    """Measured / bound; NaN (null in JSON) when either is unknown or the bound is infinite
    (a zero-work run has no meaningful bound)."""
    if not math.isfinite(throughput_tps) or not math.isfinite(bound_tps) or bound_tps <= 0:
        return math.nan
    return throughput_tps / bound_tps


def effective_members(members: int, partitions: int) -> int:
    """Members that can get a partition: the ones beyond the partition count add nothing."""
    return max(1, min(members, partitions))


def chain_limit_tps(
    num_messages: int, service_time_s: float, ordering: str, chains: Chains | None
) -> float:
    """records / the longest chain's work: what no number of consumers can beat."""
    if chains is None or ordering == "unordered":
        extra = chains.stuck_extra_s if chains else 0.0
        chain_s = service_time_s + extra
    else:
        chain_s = max(
            chains.hottest * service_time_s,
            chains.stuck_chain * service_time_s + chains.stuck_extra_s,
        )
    return num_messages / chain_s if chain_s > 0 else math.inf


def default_timeout_s(
    num_messages: int, bound_tps: float, *, produce_s: float = 0.0, join_allowance_s: float = 30.0
) -> float:
    """A run's limit when --timeout-sec is not given: three times the bound's duration, plus
    the time an open-loop producer needs to offer the records, plus a group-join allowance.
    An unknown or infinite bound falls back to a minute of processing."""
    processing_s = num_messages / bound_tps if math.isfinite(bound_tps) and bound_tps > 0 else 20.0
    return math.ceil(3 * processing_s + produce_s + join_allowance_s)
