"""Benchmark suite of Pyrallel Consumer: baseline vs async vs process on one workload.

Entry points: `python -m bench` (also `compare` and `report` subcommands),
`python -m bench.run_parallel_benchmark`, and the legacy profiler runner
`python -m bench.profile_benchmark_yappi`. See bench/README.md. The bench runs from the
checkout (it is not part of the library's distribution); the images install it as
pyrallel-consumer-bench (images/bench-dist).

Layers point down: the scripts use `cli` (parsing, `argtypes`) and `run/` (one mode on one
workload); `run/` uses `options` (BenchOptions), `workloads/`, `measure/` and `output/`;
`output/` takes the workload order from `workloads/`; `workloads/`, `measure/` and `broker/`
use only the library (and `cpu_kernel`, `io_server`). Nothing outside `bench` and the tests
imports it.
"""
