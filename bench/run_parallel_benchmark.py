"""Primary benchmark entry: baseline, async and process modes on the same workload.

    python -m bench.run_parallel_benchmark [options]      (also: python -m bench, make bench)

Exit status: 0 every run processed every record; 1 a run was incomplete or failed (its partial
results are still written), or the broker could not be started or reached; 2 bad options;
130 interrupted (partial results written).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file path (python bench/x.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import parse_args
from bench.options import BenchOptions
from bench.output import table
from bench.output.environment import environment_metadata
from bench.output.results import RunResult, default_output_path, write_results
from bench.output.scenario_tables import scenario_tables
from bench.run import cluster
from bench.run.context import RunContext, RunSpec, profile_settings, run_names
from bench.run.floor import warm_up
from bench.run.mode import run_mode
from bench.run.scenario_summary import client_settings, relate_to_one_member
from bench.run.warm_writes import warm_up_writes
from bench.workloads import WORKLOADS, Workload, WorkloadSettings, workload_class
from pyrallel_consumer.config import usable_cores

log = logging.getLogger("bench")

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


EXTERNAL = "external"
UNKNOWN_VERSION = "unknown (external cluster)"


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap_servers: str
    kind: str  # kafka | tansu | external
    version: str

    def describe(self) -> str:
        """The start-up line: `broker: Apache Kafka 4.1.1 at host:port`, or for a cluster
        nobody described `broker: external cluster at host:port, version unknown ...`."""
        if self.kind == EXTERNAL and self.version == UNKNOWN_VERSION:
            return (
                f"broker: external cluster at {self.bootstrap_servers}, version unknown "
                "(Kafka does not report it)"
            )
        return f"broker: {self.kind} {self.version} at {self.bootstrap_servers}"


def _start_broker(opts: BenchOptions, stack: contextlib.ExitStack) -> BrokerInfo:
    """The cluster given by --bootstrap-servers, else an embedded broker for this invocation."""
    if opts.bootstrap_servers:
        # Kafka's protocol does not report the broker's version (ApiVersions names request
        # versions, shared by many releases): whoever started it (the container driver,
        # compose) may say, so results do not read "external unknown".
        return BrokerInfo(
            opts.bootstrap_servers,
            os.environ.get("PYRALLEL_BROKER_KIND", EXTERNAL),
            os.environ.get("PYRALLEL_BROKER_VERSION", UNKNOWN_VERSION),
        )
    from bench.broker import resolve_default_kind, start_broker

    kind = resolve_default_kind() if opts.broker_kind == "auto" else opts.broker_kind
    print(f"starting embedded {kind} broker ...", file=sys.stderr, flush=True)
    handle = stack.enter_context(start_broker(kind))
    return BrokerInfo(handle.bootstrap_servers, handle.kind, str(handle.version))


def _set_up_workloads(
    opts: BenchOptions, stack: contextlib.ExitStack, metadata: dict[str, Any]
) -> dict[str, Workload]:
    """Set up the selected workloads (in registry order) until the stack closes; record what
    every workload reports about itself, selected or not, in the metadata."""
    settings = WorkloadSettings(
        sleep_ms=opts.worker_sleep_ms,
        cpu_iterations=opts.worker_cpu_iterations,
        io_sleep_ms=opts.worker_io_sleep_ms,
        bulk_fixed_ms=opts.worker_bulk_fixed_ms,
        bulk_per_record_ms=opts.worker_bulk_per_record_ms,
        cpu_service_ms=opts.cpu_service_ms,
        pycpu_iterations=opts.worker_pycpu_iterations,
        pycpu_service_ms=opts.pycpu_service_ms,
    )
    selected = {name: workload_class(name)(settings) for name in opts.workloads}
    for workload in selected.values():
        stack.enter_context(workload)
        line = workload.describe()
        if line:
            print(line, flush=True)
    for name in WORKLOADS:
        workload = selected.get(name) or WORKLOADS[name](settings)
        metadata.update(workload.metadata())
    return selected


def run_benchmark(opts: BenchOptions) -> int:
    """Run every selected workload x mode; write the JSON after each run; return exit status."""
    output = opts.json_output or default_output_path()
    # The container driver gives every mode's container one id: one run's files read as one.
    run_id = os.environ.get("PYRALLEL_RUN_ID") or uuid.uuid4().hex[:8]
    metadata: dict[str, Any] = environment_metadata()
    metadata["run_id"] = run_id
    metadata["options"] = opts.to_dict()
    metadata["output_mode"] = opts.output_mode  # none | at_least_once | exactly_once
    results: list[RunResult] = []
    status = EXIT_OK
    with contextlib.ExitStack() as stack:
        try:
            broker = _start_broker(opts, stack)
        except Exception as exc:  # BrokerError and anything the launcher raises
            print(f"error: could not start the embedded broker: {exc}", file=sys.stderr)
            return EXIT_INCOMPLETE
        metadata["broker"] = {
            "kind": broker.kind,
            "version": broker.version,
            "bootstrap_servers": broker.bootstrap_servers,
        }
        print(broker.describe(), flush=True)
        try:
            cluster.check_reachable(broker.bootstrap_servers)
        except cluster.BenchSetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INCOMPLETE
        identity = cluster.describe_cluster(broker.bootstrap_servers)
        metadata["broker"].update(identity)
        if "broker_count" in identity:
            print(
                f"cluster {identity['cluster_id']}: {identity['broker_count']} broker(s), "
                f"controller {identity['controller_id']}",
                flush=True,
            )
        if broker.kind == "kafka":  # a JVM started for this run: seconds slow while cold
            metadata["broker"]["warm_up"] = warm_up(broker.bootstrap_servers)
            if opts.outputs:  # the library's own producers too (warm_writes.py)
                metadata["broker"]["warm_up_writes"] = warm_up_writes(
                    broker.bootstrap_servers, opts.exactly_once
                )
        metadata["client_settings"] = client_settings(opts)
        ctx = RunContext(
            options=opts,
            bootstrap_servers=broker.bootstrap_servers,
            broker_kind=broker.kind,
            workloads=_set_up_workloads(opts, stack, metadata),
            cores=usable_cores(),
            profile=profile_settings(opts),
        )
        try:
            for spec in _planned_runs(opts, run_id):
                result = _one_run(spec, ctx)
                results.append(result)
                relate_to_one_member(results)
                write_results(output, metadata, results)  # partial results survive
                if not result.complete:
                    status = EXIT_INCOMPLETE
                    print(
                        f"warning: {spec.engine}/{spec.workload}: {result.error}", file=sys.stderr
                    )
                if result.interrupted:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            print("interrupted: writing the results so far", file=sys.stderr)
            status = EXIT_INTERRUPTED
    metadata["finished_utc_time"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    planned = len(_planned_runs(opts, run_id))
    metadata["complete"] = (
        status == EXIT_OK and len(results) == planned and all(r.complete for r in results)
    )
    output = write_results(output, metadata, results)
    if results:
        print()
        rows = [r.to_dict() for r in results]
        print(table.results_table(rows, wide=opts.wide))
        for extra in scenario_tables(rows, wide=opts.wide):
            print("\n" + extra)
    print("\n" + written_line(output))
    return status


def _one_run(spec: RunSpec, ctx: RunContext) -> RunResult:
    print("\n" + run_header(spec), flush=True)
    result = run_mode(spec, ctx)
    print(
        f"   {result.messages_processed}/{result.messages_expected} records, "
        f"{table.fmt_number(result.throughput_tps)} TPS "
        f"(bound {table.fmt_number(result.bound_tps, 1)}), "
        f"p99 {table.fmt_number(result.p99_processing_ms, 1)} ms, "
        f"join {table.fmt_number(result.join_time_sec)} s",
        flush=True,
    )
    return result


def run_header(spec: RunSpec) -> str:
    """The lines that open a run: `== async / sleep @5000/s x2` (the tables' run label), then
    its topic and group on lines of their own (together they would pass 100 columns)."""
    label = (f" @{spec.rate:g}/s" if spec.rate else "") + (
        f" x{spec.members}" if spec.members > 1 else ""
    )
    return (
        f"== {spec.engine} / {spec.workload}{label}\n"
        f"   topic {spec.topic}\n   group {spec.group_id}"
    )


def written_line(output: Path) -> str:
    """Where the results went, as an absolute path: the default (bench/results/) is relative
    to the current directory, wherever that was."""
    return f"JSON summary written to {output.resolve()}"


def _planned_runs(opts: BenchOptions, run_id: str) -> list[RunSpec]:
    """Every run of the invocation: workload x mode x offered rate x members."""
    return [
        run_names(opts, mode, workload, run_id, rate, members)
        for workload in opts.workloads
        for mode in opts.modes
        for rate in opts.rates
        for members in opts.members
    ]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    # librdkafka's own lines (the bench's admin and producer clients) only with DEBUG: a dead
    # broker would otherwise print one line per reconnect attempt.
    quiet = logging.DEBUG if level == "DEBUG" else logging.CRITICAL + 1
    logging.getLogger(cluster.LIBRDKAFKA_LOGGER).setLevel(quiet)


def main(
    argv: Sequence[str] | None = None, *, force_profile: bool = False, prog: str | None = None
) -> int:
    opts = parse_args(
        argv, prog=prog or "python -m bench.run_parallel_benchmark", force_profile=force_profile
    )
    configure_logging(opts.log_level)
    return run_benchmark(opts)


if __name__ == "__main__":
    sys.exit(main())
