"""`python -m bench.containers`: build the images, run the benchmark in containers.

    python -m bench.containers images [--local-bases] [--base-image I] [--kafka-image I] ...
    python -m bench.containers run [--bench-args "--workload cpu"] [--network host] ...

`make images` and `make bench-docker` call these. Exit status: 0 done and (run) every results
file complete and clean; 1 a build or run failed, or a results file shows missing records,
ordering violations or an incomplete run; 2 bad options; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import cli as bench_cli
from bench.cli import DEFAULT_RESULTS_DIR, MODES
from bench.containers import build, cpusets, engine, local_bases
from bench.containers import run as run_module

REPO = Path(__file__).resolve().parents[2]
# It names the containers (pyrallel-<run id>-<mode>) and the results files: the engine's
# container-name characters.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Options the driver sets for each mode's container itself: the results file and the broker.
DRIVER_OWNED_OPTIONS = (
    "--json-output",
    "--bootstrap-servers",
    "--broker-kind",
    *(f"--skip-{mode}" for mode in MODES),
)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.containers",
        description="The benchmark in containers, through the docker SDK (Docker or Podman).",
        allow_abbrev=False,
    )
    parser.add_argument("--tag", default=None, help="tag of the images (default: the version)")
    commands = parser.add_subparsers(dest="command", required=True)

    images = commands.add_parser("images", help="build the wheelhouse and the five images")
    images.add_argument("--base-image", help="BASE_IMAGE of Dockerfile.base (a Python base)")
    images.add_argument("--kafka-image", help="KAFKA_IMAGE of Dockerfile.broker")
    images.add_argument(
        "--local-bases",
        action="store_true",
        help="make the bases here (debootstrap + Maven jars) instead of pulling them",
    )
    images.add_argument("--debian-suite", default=local_bases.DEFAULT_SUITE)
    images.add_argument("--debian-mirror", default=local_bases.DEFAULT_MIRROR)
    images.add_argument(
        "--build-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE"
    )
    images.add_argument(
        "--build-network",
        default="none",
        help="network mode of the build steps (none: they need no network)",
    )
    images.add_argument("--no-cache", action="store_true", help="build every layer anew")
    images.add_argument("--pull", action="store_true", help="pull newer base images first")
    images.add_argument(
        "--reuse-wheels", action="store_true", help="keep images/wheels/ if it has this version"
    )

    run = commands.add_parser("run", help="broker + each mode's container, then the table")
    run.add_argument(
        "--bench-args",
        default="--workload all",
        help="bench options for every mode, one string (python -m bench --help)",
    )
    run.add_argument("--network", default="host", help="host, or a network name (created)")
    run.add_argument("--bench-cpuset", default=os.environ.get("BENCH_CPUSET") or None)
    run.add_argument("--broker-cpuset", default=os.environ.get("BROKER_CPUSET") or None)
    run.add_argument("--bench-memory", default="2g", help="memory limit of each mode")
    run.add_argument("--broker-memory", default="2g", help="memory limit of the broker")
    run.add_argument("--broker-heap", default="-Xms1g -Xmx1g", help="KAFKA_HEAP_OPTS")
    run.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    run.add_argument(
        "--run-id",
        default=None,
        help="the run's id: every mode's results carry it, and their files start with it "
        "(default: the UTC start time)",
    )
    run.add_argument("--modes", default=",".join(MODES), help="comma-separated, in order")
    run.add_argument("--ready-timeout", type=float, default=180.0, help="broker start limit, s")
    return parser


def check_bench_args(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    """The bench options, checked by the bench's own parser before anything starts."""
    args = shlex.split(text)
    for arg in args:
        if arg.split("=", 1)[0] in DRIVER_OWNED_OPTIONS:
            parser.error(f"--bench-args: {arg.split('=', 1)[0]} is set by the driver itself")
    # Exits with status 2 and the bench's own message on an unknown option or a bad value.
    bench_cli.build_parser(f"{parser.prog} run --bench-args").parse_args(args)
    return tuple(args)


def _images(client: Any, args: argparse.Namespace, tag: str) -> int:
    settings = build.BuildSettings(
        tag=tag,
        version=project_version(),
        git_commit=_git_commit(),
        base_image=args.base_image,
        kafka_image=args.kafka_image,
        kafka_version=build.kafka_version_of(args.kafka_image),
        build_args=dict(args.build_arg),
        network_mode=args.build_network,
        no_cache=args.no_cache,
        pull=args.pull,
    )
    started = time.monotonic()
    if args.local_bases:
        settings = build.build_local_bases(
            client, settings, log, args.debian_suite, args.debian_mirror
        )
    timings = build.build_all(client, settings, log, reuse_wheels=args.reuse_wheels)
    for name, seconds in timings.items():
        log(f"  {seconds:7.1f} s  {name}")
    log(f"images built in {time.monotonic() - started:.0f} s")
    return 0


def _run(client: Any, info: engine.EngineInfo, args: argparse.Namespace, tag: str) -> int:
    parser = build_parser()
    bench_args = check_bench_args(parser, args.bench_args)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: {args.modes!r}; choose from {', '.join(MODES)}")
    try:
        sets = cpusets.resolve_cpusets(args.bench_cpuset, args.broker_cpuset, info.cpus)
    except ValueError as exc:
        parser.error(str(exc))
    if args.run_id is not None and not RUN_ID.fullmatch(args.run_id):
        parser.error(f"--run-id: {args.run_id!r} must be letters, digits, '.', '_' or '-'")
    if sets.bench == sets.broker and info.cpus > 1:
        log("warning: the broker and the modes share CPUs: the numbers include its load")
    settings = run_module.RunSettings(
        tag=tag,
        run_id=args.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        bench_args=bench_args,
        results_dir=args.results_dir,
        cpusets=sets,
        network=args.network,
        bench_memory=args.bench_memory,
        broker_memory=args.broker_memory,
        broker_heap=args.broker_heap,
        ready_timeout_s=args.ready_timeout,
        modes=modes,
        limits=run_module.podman_limits() if info.is_podman else {},
    )
    log(
        f"run {settings.run_id}: modes {', '.join(modes)} on CPUs {sets.bench} "
        f"({settings.bench_memory}), broker on CPUs {sets.broker} ({settings.broker_memory}), "
        f"network {settings.network}, bench options: {shlex.join(bench_args)}"
    )
    status = run_module.run_benchmark(client, settings, log)
    log(f"results: {settings.results_dir}/{settings.run_id}-<mode>.json")
    return status


def _interrupt_on_sigterm() -> None:
    """SIGTERM (CI timeouts, `kill`) tears down like Ctrl-C does: containers never outlive us."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _interrupt_on_sigterm()
    try:
        client = engine.connect()
        info = engine.engine_info(client)
        log(f"engine: {info.name}, {info.cpus} CPUs")
        tag = args.tag or project_version()
        if args.command == "images":
            return _images(client, args, tag)
        return _run(client, info, args, tag)
    except (engine.ContainerError, local_bases.LocalBaseError) as exc:
        log(f"error: {exc}")
        return 1
    except engine.DockerError as exc:  # the engine refused a request the checks did not foresee
        log(f"error: the container engine says: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
