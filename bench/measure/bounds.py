"""The theoretical throughput bound of a run (bench/README.md, "What is measured").

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

Batch mode (`batch_size` b, `service_time_s` T the time of one call of b records): the
parallelism counts handler calls; a call needs b records in flight, so max_in_flight allows
max_in_flight // b calls, and each call holds at least one key (or partition) of its own. A call
does b records, so the total work is records / b calls, and a chain of k records, whose batches
run one after another, needs at least ceil(k / c) calls however the batches are filled, where
c = min(b, max_in_flight_per_lane) under key or partition order (a lane never has more records
in flight, so never more in one batch) and the chain is one record when unordered:

    bound_tps = records / max((records / b x T + stuck extra) / calls at once,
                              ceil(k / c) x T (+ stuck extra for the stuck record's chain))

With an even spread and no stuck record this is calls at once x b / T; with b = 1 it is the
formula above.

Efficiency = measured throughput / bound. The bound ignores the coordinating loop's own cost,
which is exactly what efficiency below 1 then shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyrallel_consumer.engines.registry import Capacity, engine_spec
from pyrallel_consumer.window import default_lane_cap


@dataclass(frozen=True)
class EngineShape:
    """How much work an engine can run at once (resolved defaults, not None)."""

    engine: str
    max_in_flight: int
    concurrency: int  # async: concurrent handler calls / thread-pool size
    workers: int  # process: worker processes
    worker_concurrency: int  # process: records per worker
    lane_cap: int | None = None  # max_in_flight_per_lane; None: the default without batches

    def records_per_lane(self) -> int:
        """Records of one lane (key or partition) in flight at most."""
        return self.lane_cap if self.lane_cap is not None else default_lane_cap(self.max_in_flight)

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
    batch_size: int | None = None,
) -> Bound:
    """The bound of one run; `ordering` is what the engine really guarantees (baseline processes
    one record at a time, which satisfies every ordering, and its slots are 1 anyway).

    `cpu_bound`: the work needs a core per record in progress (bench.workloads' Workload
    .cpu_bound), so the `cores` the engine can run it on also limit the parallelism;
    `releases_gil`: whether threads can run it on several cores at once; `chains`: the
    records' real spread (module docstring), None for an even spread and no stuck record;
    `batch_size`: batch mode, with `service_time_s` the time of one call of `batch_size`
    records (None: one record per call).
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
    if chains is None:
        bound_tps = parallelism * per_call / service_time_s if service_time_s > 0 else math.inf
        return Bound(parallelism, service_time_s, bound_tps)
    total_s = num_messages / per_call * service_time_s + chains.stuck_extra_s
    per_lane = min(per_call, shape.records_per_lane())
    time_s = max(total_s / parallelism, chain_time_s(service_time_s, ordering, chains, per_lane))
    return Bound(parallelism, service_time_s, num_messages / time_s if time_s > 0 else math.inf)


def chain_time_s(service_time_s: float, ordering: str, chains: Chains, per_call: int) -> float:
    """Seconds the longest chain needs at least: ceil(records / per_call) calls of
    `service_time_s` each, one after another, plus the stuck record's extra on its chain; a
    chain is one record (one call) when unordered. `per_call`: records of one lane a call can
    hold (module docstring's c)."""
    extra = chains.stuck_extra_s
    hottest = chains.hottest if ordering != "unordered" else 1
    stuck_chain = chains.stuck_chain if ordering != "unordered" else 1
    calls = math.ceil(hottest / per_call)
    stuck_calls = math.ceil(stuck_chain / per_call)
    return max(calls * service_time_s, stuck_calls * service_time_s + extra if extra else 0.0)


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
    num_messages: int,
    service_time_s: float,
    ordering: str,
    chains: Chains | None,
    batch_size: int | None = None,
    lane_cap: int = 1,
) -> float:
    """records / the longest chain's work (chain_time_s): what no number of consumers can beat.
    `batch_size` as in compute_bound; `lane_cap`: EngineShape.records_per_lane()."""
    per_call = min(batch_size or 1, lane_cap) if batch_size else 1
    chain_s = chain_time_s(service_time_s, ordering, chains or Chains(hottest=1), per_call)
    return num_messages / chain_s if chain_s > 0 else math.inf


def default_timeout_s(
    num_messages: int, pace_tps: float, *, join_allowance_s: float = 30.0
) -> float:
    """A run's limit when --timeout-sec is not given: three times the time its records take at
    `pace_tps` (the bound, or in open loop min(offered rate, bound), which also covers the
    producing), plus a group-join allowance. An unknown or infinite pace falls back to a
    minute of processing."""
    processing_s = num_messages / pace_tps if math.isfinite(pace_tps) and pace_tps > 0 else 20.0
    return math.ceil(3 * processing_s + join_allowance_s)
