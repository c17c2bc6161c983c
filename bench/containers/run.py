"""One benchmark in containers: the broker, then each mode's container one at a time, each on
the same CPU set and memory limit; their results files copied out of the containers; the
combined table. Everything started here is removed again, also on Ctrl-C or a failure.

The results are copied out of each finished container (no bind mount), so they belong to
whoever runs the driver and nothing depends on the container's uid or a host path's mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import resource
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import cli as bench_cli
from bench.cli import MODES
from bench.containers import broker as broker_container
from bench.containers.build import KAFKA_VERSION_LABEL, image_tag
from bench.containers.cpusets import CpuSets
from bench.containers.engine import ContainerError
from bench.output import results, table

RESULTS_IN_CONTAINER = "/results"
CPU_WORKLOADS = ("cpu", "all")  # the --workload values that run the cpu workload
# Run in a mode's image: the cpu workload's time per record, in ms, measured as the bench does.
CALIBRATION_SCRIPT = (
    "import sys; from bench.workloads.cpu import measure_cpu_service_time as measure; "
    "print(measure(int(sys.argv[1])) * 1000)"
)
RUN_LABEL = "io.pyrallel.run"
_MAX_LIMIT = 16384
Log = Callable[[str], None]


@dataclass(frozen=True)
class RunSettings:
    tag: str
    run_id: str
    bench_args: tuple[str, ...]
    results_dir: Path
    cpusets: CpuSets
    network: str = broker_container.HOST_NETWORK
    bench_memory: str = "2g"
    broker_memory: str = "2g"
    broker_heap: str = "-Xms1g -Xmx1g"
    ready_timeout_s: float = 180.0
    modes: tuple[str, ...] = MODES
    limits: Mapping[str, int] = field(default_factory=dict)  # ulimit name -> soft = hard limit


@dataclass(frozen=True)
class ModeOutcome:
    mode: str
    exit_code: int
    files: tuple[Path, ...]
    interrupted: bool = False  # Ctrl-C/SIGTERM stopped it; `files` hold what it measured


def mode_environment(
    settings: RunSettings, bootstrap_servers: str, kafka_version: str | None
) -> dict[str, str]:
    """What each mode's container is told: the broker (address, and what it is, for the
    results' metadata) and the run id that names the results files."""
    version = f"Apache Kafka {kafka_version or 'unknown'}"
    return {
        "BOOTSTRAP_SERVERS": bootstrap_servers,
        "PYRALLEL_RUN_ID": settings.run_id,
        "PYRALLEL_BROKER_KIND": "kafka",
        "PYRALLEL_BROKER_VERSION": f"{version} (container {image_tag('broker', settings.tag)})",
    }


def check_results_dir(directory: Path) -> None:
    """Fail before anything starts when the results directory cannot take a file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ContainerError(
            f"cannot write the results to {directory} ({exc}); give --results-dir a "
            "directory you may write"
        ) from None


def extract_results(archive: bytes, directory: Path, log: Log) -> list[Path]:
    """The .json files of a `get_archive` tar of /results, saved in `directory` (or, when that
    fails, where results.fallback_path says, with a warning: measured results are never lost)."""
    saved: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if not member.isfile() or not name.endswith(".json"):
                continue
            data = tar.extractfile(member)
            if data is None:
                continue
            content = data.read()
            target = directory / name
            try:
                target.write_bytes(content)
            except OSError as exc:
                target = results.fallback_path(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                log(f"warning: could not write {directory / name} ({exc}); saved {target}")
            saved.append(target)
    return saved


def verify_results(documents: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Problems of a run's results files (mode -> document, None when the file is missing):
    every run complete, every record processed, none missing, no ordering violation."""
    problems: list[str] = []
    for mode, doc in documents.items():
        if doc is None:
            problems.append(f"{mode}: no results file")
            continue
        runs = doc.get("results") or []
        if not runs:
            problems.append(f"{mode}: the results file holds no run")
        if not (doc.get("metadata") or {}).get("complete"):
            problems.append(f"{mode}: the results file is not marked complete")
        for run in runs:
            where = f"{run.get('run_type', mode)}/{run.get('workload', '?')}"
            expected, processed = run.get("messages_expected"), run.get("messages_processed")
            if processed != expected:
                problems.append(f"{where}: {processed} of {expected} records processed")
            for name in ("missing", "ordering_violations"):
                if run.get(name) != 0:
                    problems.append(f"{where}: {name} = {run.get(name)}")
            if not run.get("complete"):
                problems.append(f"{where}: not complete ({run.get('error') or 'no error given'})")
    return problems


def _stream_output(container: Any, mode: str, raw: bool) -> None:
    """Print the container's output as it comes: raw on a terminal (the bench's progress bar
    redraws a line), else line by line with the mode as prefix."""
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        if raw:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            print(f"[{mode}] {line.decode(errors='replace')}", flush=True)
    if pending:
        print(f"[{mode}] {pending.decode(errors='replace')}", flush=True)


def run_mode(
    client: Any, mode: str, settings: RunSettings, environment: dict[str, str], log: Log
) -> ModeOutcome:
    """Run one mode's container to its end and copy its results out; the container is removed
    afterwards. Ctrl-C stops it with SIGINT (the bench then writes what it measured so far) and
    collects that: the outcome says it was interrupted."""
    tty = sys.stdout.isatty()
    container = client.containers.create(
        image_tag(mode, settings.tag),
        command=list(settings.bench_args),
        name=f"pyrallel-{settings.run_id}-{mode}",
        tty=tty,
        environment=environment,
        cpuset_cpus=settings.cpusets.bench,
        mem_limit=settings.bench_memory,
        memswap_limit=settings.bench_memory,  # no swap: outgrowing the limit fails visibly
        shm_size="256m",  # process mode: multiprocessing queues
        **_common_options(client, settings, alias=None),
    )
    interrupted = False
    try:
        container.start()
        log(f"== {mode}: container {container.name} on CPUs {settings.cpusets.bench}")
        try:
            _stream_output(container, mode, tty)
        except KeyboardInterrupt:
            interrupted = True
            log(f"{mode}: interrupted, stopping the container (the bench keeps its results)")
            container.stop(timeout=60)
        exit_code = int(container.wait().get("StatusCode", -1))
        bits, _stat = container.get_archive(RESULTS_IN_CONTAINER)
        files = extract_results(b"".join(bits), settings.results_dir, log)
    finally:
        container.remove(force=True)
    return ModeOutcome(mode, exit_code, tuple(files), interrupted)


def with_cpu_calibration(client: Any, settings: RunSettings, log: Log) -> RunSettings:
    """`settings` with `--cpu-service-ms` added to the bench options: the cpu workload's time
    per record measured once, in the first mode's image on the modes' CPU set, so that every
    mode's bound (and efficiency) uses the same figure; each container measuring its own gave
    one run's modes different bounds. Unchanged when no cpu workload runs or the option is
    given."""
    options = bench_cli.build_parser().parse_args(list(settings.bench_args))
    if options.workload not in CPU_WORKLOADS or options.cpu_service_ms is not None:
        return settings
    image = image_tag(settings.modes[0], settings.tag)
    container = client.containers.create(
        image,
        entrypoint=["python", "-c", CALIBRATION_SCRIPT, str(options.worker_cpu_iterations)],
        command=[],
        name=f"pyrallel-{settings.run_id}-calibration",
        cpuset_cpus=settings.cpusets.bench,
        mem_limit=settings.bench_memory,
        **_common_options(client, settings, alias=None),
    )
    try:
        container.start()
        exit_code = int(container.wait().get("StatusCode", -1))
        output = container.logs().decode(errors="replace").strip()
    finally:
        container.remove(force=True)
    try:
        service_ms = float(output.splitlines()[-1]) if exit_code == 0 else math.nan
    except (IndexError, ValueError):
        service_ms = math.nan
    if not service_ms > 0:
        raise ContainerError(
            f"measuring the cpu workload in {image} failed (exit status {exit_code}): {output}"
        )
    log(
        f"cpu workload: {service_ms:.4f} ms per record on CPUs {settings.cpusets.bench}, "
        "measured once for every mode (--cpu-service-ms)"
    )
    bench_args = (*settings.bench_args, "--cpu-service-ms", f"{service_ms:.6g}")
    return dataclasses.replace(settings, bench_args=bench_args)


def podman_limits() -> dict[str, int]:
    """Open-files and processes limits for Podman's containers: this process's hard limits, at
    most 16384 each (a benchmark broker or mode needs a few hundred). Rootful Podman otherwise
    asks for 1048576 files and 4194304 processes, which fails to start any container where its
    own hard limits are lower ("error setting rlimit type 7: operation not permitted"). Docker
    needs none: its defaults are the engine's own limits."""
    limits = {}
    for name, kind in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(kind)[1]
        limits[name] = _MAX_LIMIT if hard == resource.RLIM_INFINITY else min(hard, _MAX_LIMIT)
    return limits


def _common_options(client: Any, settings: RunSettings, alias: str | None) -> dict[str, Any]:
    """What every container of a run shares: an init process (signals, reaping worker
    processes), the run's label, the resource limits and the network."""
    import docker.types

    return {
        "init": True,
        "labels": {RUN_LABEL: settings.run_id},
        "ulimits": [
            docker.types.Ulimit(name=name, soft=limit, hard=limit)
            for name, limit in settings.limits.items()
        ],
        **_network_options(client, settings.network, alias),
    }


def _network_options(client: Any, network: str, alias: str | None) -> dict[str, Any]:
    if network == broker_container.HOST_NETWORK:
        return {"network_mode": "host"}
    options: dict[str, Any] = {"network": network}
    if alias:  # the name other containers of the network reach it by (DNS on that network)
        options["hostname"] = alias
        options["networking_config"] = {network: client.api.create_endpoint_config(aliases=[alias])}
    return options


def _ensure_network(client: Any, network: str, stack: contextlib.ExitStack, log: Log) -> None:
    import docker.errors

    if network == broker_container.HOST_NETWORK:
        return
    try:
        client.networks.get(network)
    except docker.errors.NotFound:
        created = client.networks.create(network, driver="bridge")
        log(f"network {network} created")
        stack.callback(created.remove)


def start_broker(
    client: Any, settings: RunSettings, stack: contextlib.ExitStack, log: Log
) -> tuple[str, str | None]:
    """Start the broker (removed when `stack` closes) and wait until it is healthy; returns the
    address the modes use and the Kafka version the image is labelled with."""
    _ensure_network(client, settings.network, stack, log)
    image = client.images.get(image_tag("broker", settings.tag))
    layout = broker_container.broker_layout(settings.network, settings.broker_heap)
    container = client.containers.create(
        image.id,
        name=f"pyrallel-{settings.run_id}-broker",
        environment=layout.environment,
        healthcheck=broker_container.NO_HEALTHCHECK,
        cpuset_cpus=settings.cpusets.broker,
        mem_limit=settings.broker_memory,
        memswap_limit=settings.broker_memory,
        **_common_options(client, settings, alias=broker_container.BROKER_ALIAS),
    )
    stack.callback(container.remove, force=True)  # registered before start: a failed start too
    container.start()
    log(f"broker: container {container.name} on CPUs {settings.cpusets.broker}, starting")
    probe = broker_container.probe_command(layout.probe_address)
    waited = broker_container.wait_ready(container, probe, settings.ready_timeout_s, log)
    log(f"broker: answers at {layout.bootstrap_servers} after {waited:.0f} s")
    return layout.bootstrap_servers, image.labels.get(KAFKA_VERSION_LABEL)


def check_images(client: Any, settings: RunSettings) -> None:
    """Every image of the run exists here (the driver never pulls them): checked up front."""
    import docker.errors

    missing = []
    for component in ("broker", *settings.modes):
        try:
            client.images.get(image_tag(component, settings.tag))
        except docker.errors.ImageNotFound:
            missing.append(image_tag(component, settings.tag))
    if missing:
        raise ContainerError(
            f"missing image(s) {', '.join(missing)}: build them first (make images, or "
            "python -m bench.containers images; --local-bases without a registry)"
        )


def load_documents(
    outcomes: Sequence[ModeOutcome], settings: RunSettings
) -> dict[str, dict[str, Any] | None]:
    """mode -> its results document (None when the mode left no file named for this run)."""
    documents: dict[str, dict[str, Any] | None] = {}
    for mode in settings.modes:
        wanted = f"{settings.run_id}-{mode}.json"
        paths = [p for o in outcomes if o.mode == mode for p in o.files if p.name == wanted]
        documents[mode] = orjson.loads(paths[0].read_bytes()) if paths else None
    return documents


def run_benchmark(client: Any, settings: RunSettings, log: Log) -> int:
    """The whole run; exit status 0 when every mode's results are complete and clean, 1 when
    not (the problems are printed), 130 when interrupted (after collecting what was measured)."""
    check_results_dir(settings.results_dir)
    check_images(client, settings)
    settings = with_cpu_calibration(client, settings, log)
    outcomes: list[ModeOutcome] = []
    status = 0
    with contextlib.ExitStack() as stack:
        bootstrap, kafka_version = start_broker(client, settings, stack, log)
        environment = mode_environment(settings, bootstrap, kafka_version)
        try:
            for mode in settings.modes:
                outcome = run_mode(client, mode, settings, environment, log)
                outcomes.append(outcome)
                saved = ", ".join(map(str, outcome.files)) or "none"
                log(f"{mode}: exit status {outcome.exit_code}, results: {saved}")
                if outcome.interrupted:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            status = 130
    documents = load_documents(outcomes, settings)
    rows = [run for doc in documents.values() if doc for run in doc.get("results") or []]
    if rows:
        print()
        print(table.results_table(rows))
    if status:
        log("interrupted: the results measured so far are above")
        return status
    problems = verify_results(documents)
    problems += [f"{o.mode}: exit status {o.exit_code}" for o in outcomes if o.exit_code != 0]
    for problem in problems:
        log(f"problem: {problem}")
    return 1 if problems else 0
