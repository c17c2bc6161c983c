"""The output-topic check of `--outputs` runs: from the output records read back, which input
records have no output (missing), which have more than one (duplicates), where one key's
outputs are out of input order, and how long after its input each output was written.

Pure functions over plain data (no Kafka), so they are tested against known inputs; the reading
is bench/run/output_topic.py. An output's value names its input (bench/workloads/outputs.py).

The definitions are the input side's (bench/measure/stats.py), on the output topic's log order
instead of completion order:

- missing: a measured input record with no output in the topic;
- duplicates: outputs beyond the first of one input record;
- ordering violations: per input partition and key (outputs of one key go to one output
  partition), in the output log's order, an output whose input offset is below the highest
  seen so far; a duplicate is not a violation (it is counted apart). Partition ordering checks
  per key as well: outputs of one input partition but different keys go to different output
  partitions, whose interleaving has no order. Unordered runs count none;
- extra: outputs of input records that are not measured (an open loop's warm-up records) or
  whose value names no input record; left out of the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bench.measure.stats import LatencySummary, summarize_latencies

Source = tuple[int, int]  # an input record: (partition, offset)


@dataclass(frozen=True, slots=True)
class OutputSample:
    """One output record read back: where it is in the output topic, its key and timestamp
    (ms since the epoch), and the input record its value names (None: a value that does not
    parse) with the input's timestamp (ms)."""

    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    source: Source | None
    source_timestamp_ms: int = 0


def parse_output_value(value: bytes | None) -> tuple[Source, int] | None:
    """((input partition, input offset), input timestamp ms) from an output value made by
    bench.workloads.outputs.output_value; None for any other value."""
    parts = (value or b"").split(b":")
    if len(parts) != 3:
        return None
    try:
        partition, offset, timestamp = (int(part) for part in parts)
    except ValueError:
        return None
    return (partition, offset), timestamp


@dataclass(frozen=True)
class OutputCheck:
    """The counters of one output topic, and the end-to-end latency: input timestamp -> the
    output's timestamp (its log-append time on the run's output topics), first output of each
    input record, in milliseconds."""

    read: int  # output records read back
    unique: int  # measured input records with at least one output
    missing: int
    duplicates: int
    ordering_violations: int
    extra: int
    e2e: LatencySummary


def check_outputs(
    samples: Sequence[OutputSample], expected: Collection[Source], ordering: str
) -> OutputCheck:
    """Count what `samples` (any order) say about the outputs of the `expected` input records
    under the run's `ordering` (key | partition | unordered); see the module's definitions."""
    wanted = set(expected)
    in_log_order = sorted(samples, key=lambda s: (s.partition, s.offset))
    measured = [s for s in in_log_order if s.source is not None and s.source in wanted]
    seen: set[Source] = set()
    highest: dict[tuple[int, bytes | None], int] = {}
    violations = 0
    latencies_s: list[float] = []
    for sample in measured:
        source = sample.source
        assert source is not None  # filtered above; narrows the type
        if source in seen:
            continue
        seen.add(source)
        latencies_s.append((sample.timestamp_ms - sample.source_timestamp_ms) / 1000)
        if ordering == "unordered":
            continue
        group = (source[0], sample.key)
        previous = highest.get(group)
        if previous is not None and source[1] < previous:
            violations += 1
        else:
            highest[group] = source[1]
    return OutputCheck(
        read=len(samples),
        unique=len(seen),
        missing=len(wanted - seen),
        duplicates=len(measured) - len(seen),
        ordering_violations=violations,
        extra=len(samples) - len(measured),
        e2e=summarize_latencies(latencies_s),
    )
