"""The bench's collector: on_complete keeps each completion as given, and the progress counts
them from a thread of its own, the last ones included."""

from __future__ import annotations

from bench_completions import completion

from bench.output.progress import Progress
from bench.run.collector import Collector, counting


def test_on_complete_keeps_the_completion_itself() -> None:
    collector = Collector(Progress(2, "t", enabled=False))
    done = completion(0, 7, b"k", 1.0, 1.5, 2.0)
    collector.on_complete(done)
    assert collector.samples == [done] and collector.samples[0] is done


def test_counting_reports_every_sample_appended_the_last_ones_too() -> None:
    samples: list[int] = []
    reported: list[int] = []
    with counting(samples, reported.append, interval_s=3600.0):
        samples.extend(range(5))  # no report while the block runs: the interval is an hour
    assert sum(reported) == 5  # reported once the block ended
    with counting(samples, reported.append, interval_s=3600.0):
        pass
    assert sum(reported) == 5  # nothing new: nothing reported
