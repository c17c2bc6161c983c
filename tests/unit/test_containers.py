"""The container driver (bench.containers) without an engine: CPU sets, build plan, broker
layout and healthcheck, results collection and verification, and the bench's side of the
contract (results location checked early, broker recorded by kind and version).

The CI script .ci/containers runs the same code against a real engine.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import cli, run_parallel_benchmark
from bench.containers import broker, build, cpusets, local_bases
from bench.containers import cli as driver_cli
from bench.containers import run as run_module
from bench.containers.engine import ContainerError
from bench.output import results

IMAGES = Path(__file__).resolve().parents[2] / "images"

# --- CPU sets derived from the engine's CPUs (not fixed numbers a small machine lacks) ----------


@pytest.mark.parametrize(
    ("cpus", "bench", "broker_set"),
    [(1, "0", "0"), (2, "0", "1"), (3, "0-1", "2"), (4, "0-2", "3"), (8, "0-5", "6-7")],
)
def test_default_cpusets_fit_the_machine_and_keep_the_broker_apart(
    cpus: int, bench: str, broker_set: str
) -> None:
    sets = cpusets.default_cpusets(cpus)
    assert (sets.bench, sets.broker) == (bench, broker_set)
    used = cpusets.parse_cpuset(sets.bench) + cpusets.parse_cpuset(sets.broker)
    assert max(used) < cpus
    if cpus > 1:
        assert not set(cpusets.parse_cpuset(sets.bench)) & set(cpusets.parse_cpuset(sets.broker))


def test_a_cpuset_beyond_the_engine_is_refused_before_docker_sees_it() -> None:
    with pytest.raises(ValueError, match=r"BROKER_CPUSET='2-3' asks for CPU 2-3.*has 2 CPUs"):
        cpusets.resolve_cpusets(None, "2-3", engine_cpus=2)
    assert cpusets.resolve_cpusets("1", None, engine_cpus=2) == cpusets.CpuSets("1", "1")
    with pytest.raises(ValueError, match="BENCH_CPUSET"):
        cpusets.resolve_cpusets("0-x", None, engine_cpus=2)


@given(st.sets(st.integers(min_value=0, max_value=63), min_size=1))
def test_cpuset_text_round_trips(cpus: set[int]) -> None:
    assert cpusets.parse_cpuset(cpusets.format_cpuset(sorted(cpus))) == sorted(cpus)


# --- the build plan ------------------------------------------------------------------------------


def test_plan_builds_base_then_modes_on_it_then_broker_with_the_given_bases() -> None:
    settings = build.BuildSettings(
        tag="t1",
        version="0.1.0",
        base_image="pyrallel/local-python:bookworm",
        kafka_image="pyrallel/local-kafka:4.1.1",
        kafka_version="4.1.1",
        build_args={"EXTRA": "1"},
    )
    steps = build.plan(settings)
    assert [s.tag for s in steps] == [
        f"pyrallel/bench-{c}:t1" for c in ("base", "baseline", "async", "process", "broker")
    ]
    assert steps[0].build_args["BASE_IMAGE"] == "pyrallel/local-python:bookworm"
    assert all(s.build_args["PYRALLEL_BASE"] == "pyrallel/bench-base:t1" for s in steps[1:4])
    assert steps[4].build_args["KAFKA_IMAGE"] == "pyrallel/local-kafka:4.1.1"
    assert all(s.build_args["EXTRA"] == "1" for s in steps)  # extra build flags reach every build
    assert all((IMAGES / s.dockerfile).is_file() for s in steps)


def test_kafka_version_comes_from_a_versioned_image_reference_only() -> None:
    assert build.kafka_version_of("apache/kafka:4.1.1") == "4.1.1"
    assert build.kafka_version_of("registry:5000/apache/kafka:4.0.0") == "4.0.0"
    assert build.kafka_version_of("registry:5000/kafka") is None
    assert build.kafka_version_of("kafka:latest") is None


def test_a_build_error_is_raised_with_the_builders_message() -> None:
    step = build.BuildStep("pyrallel/bench-base:t", "Dockerfile.base", {})
    stream = [
        {"stream": "Step 6/20 : RUN sh /build/check-base.sh /build/wheels\n"},
        {"stream": "\x1b[91mBASE_IMAGE does not fit: its python3 lacks venv/ensurepip\n\x1b[0m"},
        {"stream": " ---> Removing intermediate container 2ed7e7bcc642\n"},
        {"error": "x", "errorDetail": {"message": "returned a non-zero code: 1"}},
    ]
    lines: list[str] = []
    with pytest.raises(ContainerError) as failure:
        build._follow_build(stream, step, lines.append)
    assert "images/Dockerfile.base: returned a non-zero code: 1" in str(failure.value)
    assert "BASE_IMAGE does not fit: its python3 lacks" in str(failure.value)  # the reason
    assert lines[0] == "   Step 6/20 : RUN sh /build/check-base.sh /build/wheels"


def test_a_broker_image_without_healthcheck_is_reported_with_the_podman_fix() -> None:
    assert build.healthcheck_warning({"Config": {"Healthcheck": {"Test": ["CMD", "x"]}}}) is None
    warning = build.healthcheck_warning({"Config": {"Healthcheck": None}})
    assert warning is not None and "BUILDAH_FORMAT=docker" in warning


def test_kafka_base_context_has_the_launcher_executable_and_every_jar(tmp_path: Path) -> None:
    (tmp_path / "kafka_2.13-4.1.1.jar").write_bytes(b"jar")
    (tmp_path / "kafka-clients-4.1.1.jar").write_bytes(b"jar")
    with tarfile.open(fileobj=local_bases.kafka_context(tmp_path)) as tar:
        members = {m.name: m.mode for m in tar.getmembers()}
    assert members["Dockerfile"] == 0o644 and members["kafka-run.sh"] == 0o755
    assert {"libs/kafka_2.13-4.1.1.jar", "libs/kafka-clients-4.1.1.jar"} <= set(members)
    (tmp_path / "kafka_2.13-4.1.1.jar").unlink()
    with pytest.raises(local_bases.LocalBaseError, match="no Kafka broker jar"):
        local_bases.kafka_context(tmp_path)


def test_the_imported_image_id_is_read_from_the_engines_answer() -> None:
    answer = '{"status":"sha256:c7ce"}\r\n'
    assert local_bases.imported_image_id(answer) == "sha256:c7ce"
    assert local_bases.imported_image_id('{"message":"invalid tar header"}') is None


def test_rootfs_cache_is_keyed_by_suite_and_packages() -> None:
    paths = {
        local_bases.rootfs_cache_path(local_bases.PYTHON),
        local_bases.rootfs_cache_path(local_bases.JRE),
        local_bases.rootfs_cache_path(local_bases.PYTHON, "trixie"),
    }
    assert len(paths) == 3
    command = local_bases.debootstrap_command(local_bases.PYTHON, Path("/r"))
    assert command[:3] == ["debootstrap", "--variant=minbase", "--include=python3,python3-venv"]


# --- the broker container ------------------------------------------------------------------------


def test_host_network_broker_listens_on_loopback_only() -> None:
    layout = broker.broker_layout("host", "-Xmx512m", ports=[40001, 40002])
    env = layout.environment
    assert env["KAFKA_LISTENERS"] == ("PLAINTEXT://127.0.0.1:40001,CONTROLLER://127.0.0.1:40002")
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:40001"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:40002"
    assert layout.bootstrap_servers == layout.probe_address == "127.0.0.1:40001"
    named = broker.broker_layout("pyrallel", "-Xmx512m")
    assert named.bootstrap_servers == "broker:9092" and "KAFKA_LISTENERS" not in named.environment


def test_the_drivers_probe_is_the_images_healthcheck() -> None:
    dockerfile = (IMAGES / "Dockerfile.broker").read_text()
    assert broker.probe_command("localhost:29092")[2] in dockerfile


class FakeBrokerContainer:
    """The slice of docker's Container that wait_ready uses: states and probe answers replayed."""

    def __init__(self, states: list[str], probes: list[int]) -> None:
        self.states, self.probes = states, probes
        self.attrs: dict[str, Any] = {}
        self.probed: list[list[str]] = []

    def reload(self) -> None:
        status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        self.attrs = {"State": {"Status": status}}

    def exec_run(self, command: list[str]) -> tuple[int, bytes]:
        self.probed.append(command)
        code = self.probes.pop(0) if len(self.probes) > 1 else self.probes[0]
        return code, b"" if code == 0 else b"Connection to node -1 could not be established"

    def logs(self, tail: int) -> bytes:
        return b"[2026] ERROR Exiting Kafka"


def wait(container: FakeBrokerContainer, timeout_s: float = 60) -> float:
    clock = iter(range(0, 1000, 5))
    probe = broker.probe_command("127.0.0.1:4000")
    return broker.wait_ready(
        container, probe, timeout_s, lambda _: None, lambda: next(clock), lambda _: None
    )


def test_wait_ready_probes_until_the_broker_answers_and_reports_a_dead_broker() -> None:
    ready = FakeBrokerContainer(["running"], [1, 1, 0])
    assert wait(ready) > 0 and len(ready.probed) == 3
    assert "--bootstrap-server 127.0.0.1:4000" in ready.probed[0][2]
    dead = FakeBrokerContainer(["running", "exited"], [1])
    with pytest.raises(ContainerError, match=r"(?s)stopped \(exited\).*Exiting Kafka"):
        wait(dead)
    silent = FakeBrokerContainer(["running"], [1])
    with pytest.raises(ContainerError, match=r"within 30 s .*could not be established"):
        wait(silent, timeout_s=30)


def test_podman_containers_get_resource_limits_the_engine_can_grant() -> None:
    import resource

    limits = run_module.podman_limits()
    assert set(limits) == {"nofile", "nproc"}
    for name, kind in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(kind)[1]
        assert 0 < limits[name] <= 16384
        assert hard == resource.RLIM_INFINITY or limits[name] <= hard


# --- results: collected, verified, never lost ---------------------------------------------------


def settings(tmp_path: Path) -> run_module.RunSettings:
    return run_module.RunSettings(
        tag="0.1.0",
        run_id="r1",
        bench_args=("--num-messages", "10"),
        results_dir=tmp_path,
        cpusets=cpusets.CpuSets("0", "1"),
    )


def test_modes_record_the_container_broker_not_external_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = run_module.mode_environment(settings(tmp_path), "127.0.0.1:4000", "4.1.1")
    assert env["BOOTSTRAP_SERVERS"] == "127.0.0.1:4000" and env["PYRALLEL_RUN_ID"] == "r1"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    opts = cli.parse_args(["--bootstrap-servers", env["BOOTSTRAP_SERVERS"]])
    with contextlib.ExitStack() as stack:
        info = run_parallel_benchmark._start_broker(opts, stack)
    assert info.kind == "kafka"
    assert info.version == "Apache Kafka 4.1.1 (container pyrallel/bench-broker:0.1.0)"


def archive_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_results_are_copied_out_and_saved_elsewhere_when_the_directory_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = archive_of({"results/r1-async.json": b"{}", "results/profiles/x.prof": b"p"})
    saved = run_module.extract_results(archive, tmp_path, print)
    assert saved == [tmp_path / "r1-async.json"] and saved[0].read_bytes() == b"{}"

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    messages: list[str] = []
    saved = run_module.extract_results(archive, blocked, messages.append)
    assert saved == [tmp_path / "tmp" / "pyrallel-results" / "r1-async.json"]
    assert saved[0].read_bytes() == b"{}" and str(saved[0]) in messages[0]


def test_an_unwritable_results_directory_fails_before_anything_starts(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(ContainerError, match="cannot write the results to"):
        run_module.check_results_dir(blocked / "results")
    run_module.check_results_dir(tmp_path / "new" / "results")  # created


def clean_doc(mode: str, **changes: Any) -> dict[str, Any]:
    run = {"run_type": mode, "workload": "sleep", "messages_expected": 10}
    run.update(messages_processed=10, missing=0, ordering_violations=0, complete=True)
    run.update(changes)
    return {"metadata": {"complete": run["complete"]}, "results": [run]}


def test_verify_results_wants_every_mode_complete_with_nothing_missing_or_misordered() -> None:
    assert run_module.verify_results({m: clean_doc(m) for m in ("baseline", "async")}) == []
    problems = run_module.verify_results(
        {
            "baseline": clean_doc("baseline", missing=2, messages_processed=8),
            "async": clean_doc("async", ordering_violations=1),
            "process": None,
        }
    )
    assert problems == [
        "baseline/sleep: 8 of 10 records processed",
        "baseline/sleep: missing = 2",
        "async/sleep: ordering_violations = 1",
        "process: no results file",
    ]


# --- the bench's side: results location checked before the run, fallback after ------------------


def test_bench_refuses_an_unwritable_results_path_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(SystemExit):
        cli.parse_args(["--json-output", str(blocked / "out.json")])
    assert "a-file is not a directory" in capsys.readouterr().err
    monkeypatch.setattr(cli.os, "access", lambda *_: False)  # as a non-root uid would see it
    with pytest.raises(SystemExit):
        cli.parse_args(["--json-output", str(tmp_path / "sub" / "out.json")])
    assert f"{tmp_path} is not writable by uid" in capsys.readouterr().err


def test_measured_results_go_to_a_fallback_when_their_path_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    written = results.write_results(blocked / "run.json", {"run_id": "x"}, [])
    assert written == tmp_path / "tmp" / "pyrallel-results" / "run.json"
    assert json.loads(written.read_text())["metadata"] == {"run_id": "x"}
    assert f"wrote them to {written}" in capsys.readouterr().err


# --- the driver's command line -------------------------------------------------------------------


def test_driver_checks_bench_options_with_the_bench_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = driver_cli.build_parser()
    assert driver_cli.check_bench_args(parser, "--workload cpu --num-messages 50") == (
        "--workload",
        "cpu",
        "--num-messages",
        "50",
    )
    for bad, message in [
        ("--json-output x.json", "--json-output is set by the driver"),
        ("--num-mesages 5", "unknown option --num-mesages; did you mean --num-messages?"),
    ]:
        with pytest.raises(SystemExit):
            driver_cli.check_bench_args(parser, bad)
        assert message in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_targets_call_the_driver_with_extra_build_flags_and_derived_cpusets() -> None:
    def dry_run(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", "--no-print-directory", *args],
            cwd=IMAGES.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return " ".join(done.stdout.replace("\\\n", " ").split())

    images = dry_run("images", "LOCAL_BASES=1", "IMAGE_BUILD_FLAGS=--no-cache --build-arg X=1")
    assert "-m bench.containers images" in images
    assert "--local-bases" in images and "--no-cache --build-arg X=1" in images
    bench = dry_run("bench-docker", "BENCH_ARGS=--workload cpu")
    assert '-m bench.containers run --bench-args "--workload cpu"' in bench
    assert "--bench-cpuset" not in bench and "--broker-cpuset" not in bench  # derived
    assert "--broker-cpuset 1" in dry_run("bench-docker", "BROKER_CPUSET=1")
