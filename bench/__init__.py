"""Benchmark suite of Pyrallel Consumer: baseline vs async vs process on one workload.

Entry points: `python -m bench` (also `compare` and `report` subcommands),
`python -m bench.run_parallel_benchmark`, the `pyrallel-bench` script, and the legacy
profiler runner `python -m bench.profile_benchmark_yappi`. See bench/README.md.
"""
