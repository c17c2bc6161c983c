"""What one consuming phase of a run yields, whichever way it ran (one consumer in this
process, bench/run/local.py, or several member processes, bench/run/members.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from bench.measure.stats import CompletionSample
from bench.run.floor import Floor
from bench.run.produce import Delivered, ProducePlan
from bench.workloads import Handler
from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.options import EngineName, Ordering


@dataclass(frozen=True)
class PhaseSpec:
    """How to consume one phase: the records (`plan`; open loop when plan.rate is set), the
    handler, the ParallelConsumer options and librdkafka settings, the limits. `expected` is
    the records measured; the consumer also consumes the plan's warm-up records."""

    plan: ProducePlan
    expected: int
    handler: Handler
    engine: str
    ordering: str
    engine_options: Mapping[str, Any]
    kafka_config: Mapping[str, Any]
    timeout_s: float
    members: int = 1
    partitions: int = 1  # of the topic: members beyond it get nothing
    label: str = ""

    @property
    def to_consume(self) -> int:
        """Records the consumer waits for: the warm-up ones and the expected ones."""
        return self.plan.warmup_messages + self.expected

    def consumer(
        self,
        on_complete: Callable[[CompletionSample], None],
        on_assign: Callable[[Sequence[tuple[str, int]]], None],
        options: Mapping[str, Any],
    ) -> ParallelConsumer:
        """The phase's ParallelConsumer with these callbacks and ParallelConsumer `options`
        (the engine's, and the run's or the member's own)."""
        return ParallelConsumer(
            dict(self.kafka_config),
            topics=[self.plan.topic],
            handler=self.handler,
            engine=cast(EngineName, self.engine),  # names checked by the bench's parser
            ordering=cast(Ordering, self.ordering),
            on_complete=on_complete,
            on_assign=on_assign,
            **options,
        )


@dataclass
class Phase:
    """The completions and events of one phase, per member (one member for a local run).

    Times are time.monotonic() (one clock for every process on Linux). Once finished, the
    samples and `delivered` hold the measured records only (`warmup_records` were dropped);
    `floor` is the plain loop's latency at the same rate (open loop, bench/run/floor.py).
    """

    started: float
    member_samples: list[list[CompletionSample]]
    assigned_at: list[list[float]]  # per member: every on_assign call with partitions
    engine_stats: dict[str, Any] = field(default_factory=dict)
    profile_files: list[str] = field(default_factory=list)
    delivered: Delivered | None = None  # open loop: the producer's report
    error: str | None = None
    wall_s: float = math.nan  # phase start -> every consumer returned
    warmup_records: int = 0  # open loop: records of the warm-up, left out of every figure
    floor: Floor | None = None

    def finish(self) -> Phase:
        """Close the phase once every consumer returned: the producer's error (open loop)
        becomes the phase's when it has none of its own, the warm-up records are dropped from
        the samples and the delivery report, and the wall time is taken."""
        if self.delivered is not None and self.delivered.error and self.error is None:
            self.error = self.delivered.error
        if self.delivered is not None and self.delivered.warmup:
            warm = self.delivered.warmup_records()
            self.member_samples = [
                [s for s in samples if (s.partition, s.offset) not in warm]
                for samples in self.member_samples
            ]
            self.warmup_records = self.delivered.warmup
            self.delivered = self.delivered.measured()
        self.wall_s = time.monotonic() - self.started
        return self

    @property
    def samples(self) -> list[CompletionSample]:
        return [s for member in self.member_samples for s in member]

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    def join_time_s(self) -> float:
        """Start -> the last member's first assignment (every member that got one)."""
        firsts = [times[0] for times in self.assigned_at if times]
        return max(firsts) - self.started if firsts else math.nan

    def rebalance_time_s(self) -> float:
        """The first member's first assignment -> the last assignment of any member: how long
        the group took to settle once it started assigning (0 for a single round)."""
        every = [t for times in self.assigned_at for t in times]
        return max(every) - min(every) if every else math.nan


ConsumeFn = Callable[[PhaseSpec], Phase]
