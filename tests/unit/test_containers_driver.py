"""The container driver's command line against a fake engine (tests/unit/fake_engine.py): a build
that cannot reach a registry says what to do, and one `run` gives every mode one run id and one
cpu service time, measured once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import orjson
import pytest
from fake_engine import FakeEngine

from bench.containers import build, engine
from bench.containers import cli as driver_cli
from bench.workloads.base import WorkloadSettings
from bench.workloads.cpu import CpuWorkload

REGISTRY_DOWN = (
    'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on '
    "10.0.0.1:53: no such host"
)


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(engine, "connect", lambda: fake)
    monkeypatch.setattr(build, "build_wheelhouse", lambda *_, **__: None)
    monkeypatch.setattr(driver_cli, "_interrupt_on_sigterm", lambda: None)
    return fake


@pytest.mark.parametrize(
    "failure",
    [
        [{"error": REGISTRY_DOWN, "errorDetail": {"message": REGISTRY_DOWN}}],  # Docker
        docker.errors.APIError(  # Podman answers the build request itself with an error
            '500 Server Error: Internal Server Error ("initializing source '
            "docker://python:3.11.7-slim-bookworm: pinging container registry "
            'registry-1.docker.io: Get "https://registry-1.docker.io/v2/": dial tcp: i/o timeout")'
        ),
    ],
)
def test_a_build_that_cannot_reach_a_registry_says_to_use_local_bases(
    fake_engine: FakeEngine,
    failure: Exception | list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_engine.build_failure = failure
    assert driver_cli.main(["images"]) == 1
    err = capsys.readouterr().err
    error = err[err.index("error: ") :]
    assert "building pyrallel/bench-base:" in error and "registry-1.docker.io" in error
    assert "hint: the engine could not pull a base image" in error
    assert "make images LOCAL_BASES=1" in error and "--local-bases" in error


def test_a_build_failing_for_another_reason_gets_no_registry_hint(
    fake_engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_engine.build_failure = [{"error": "x", "errorDetail": {"message": "returned 1"}}]
    assert driver_cli.main(["images"]) == 1
    err = capsys.readouterr().err
    assert "returned 1" in err and "LOCAL_BASES" not in err


def run_driver(tmp_path: Path, *args: str) -> int:
    return driver_cli.main(["run", "--results-dir", str(tmp_path), "--bench-cpuset", "0", *args])


def test_one_run_gives_every_mode_one_run_id_and_one_cpu_calibration(
    fake_engine: FakeEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_driver(tmp_path, "--run-id", "r7", "--bench-args", "--workload all")
    assert status == 0, capsys.readouterr().err
    calibrations = [c for c in fake_engine.created if c.is_calibration]
    modes = [
        c for c in fake_engine.created if "PYRALLEL_RUN_ID" in c.options.get("environment", {})
    ]
    assert len(calibrations) == 1 and calibrations[0].removed
    calibration = calibrations[0]
    assert calibration.image.startswith("pyrallel/bench-baseline:")  # a mode's own image
    assert calibration.options["cpuset_cpus"] == "0"  # the modes' CPUs
    assert calibration.options["entrypoint"][-1] == "1000"  # the bench's default iterations
    assert [c.image.split(":")[0] for c in modes] == [
        f"pyrallel/bench-{mode}" for mode in ("baseline", "async", "process")
    ]
    assert {c.options["environment"]["PYRALLEL_RUN_ID"] for c in modes} == {"r7"}
    for container in modes:
        command = container.options["command"]
        assert command[:2] == ["--workload", "all"]
        assert command[command.index("--cpu-service-ms") + 1] == "0.123456"
    docs = [orjson.loads(p.read_bytes()) for p in sorted(tmp_path.glob("r7-*.json"))]
    assert len(docs) == 3
    assert {doc["metadata"]["run_id"] for doc in docs} == {"r7"}
    assert {doc["metadata"]["cpu_service_ms"] for doc in docs} == {0.123456}
    assert "0.1235 ms per record on CPUs 0, measured once for every mode" in (
        capsys.readouterr().err
    )


def test_no_calibration_without_the_cpu_workload_or_when_the_time_is_given(
    fake_engine: FakeEngine, tmp_path: Path
) -> None:
    assert run_driver(tmp_path, "--bench-args", "--workload sleep") == 0
    assert run_driver(tmp_path, "--bench-args", "--workload cpu --cpu-service-ms 0.5") == 0
    assert not [c for c in fake_engine.created if c.is_calibration]
    modes = [
        c for c in fake_engine.created if "PYRALLEL_RUN_ID" in c.options.get("environment", {})
    ]
    assert modes[-1].options["command"][-2:] == ["--cpu-service-ms", "0.5"]
    for one_run in (modes[:3], modes[3:]):  # the default id (the UTC start time) is shared too
        assert len({c.options["environment"]["PYRALLEL_RUN_ID"] for c in one_run}) == 1


def test_a_failed_calibration_stops_the_run_before_the_broker_starts(
    fake_engine: FakeEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_engine.calibration_status = 1
    fake_engine.calibration_output = b"ModuleNotFoundError: No module named 'bench'"
    assert run_driver(tmp_path, "--bench-args", "--workload cpu") == 1
    err = capsys.readouterr().err
    assert "measuring the cpu workload in pyrallel/bench-baseline:" in err
    assert "No module named 'bench'" in err
    assert [c.is_calibration for c in fake_engine.created] == [True]  # nothing else started


def test_a_run_id_that_cannot_name_a_container_is_refused(
    fake_engine: FakeEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run_driver(tmp_path, "--run-id", "my run")
    assert "--run-id: 'my run' must be letters" in capsys.readouterr().err
    assert not fake_engine.created


def test_a_given_cpu_service_time_is_used_instead_of_measuring() -> None:
    with CpuWorkload(WorkloadSettings(cpu_iterations=10, cpu_service_ms=0.5)) as cpu:
        assert cpu.service_time_s() == 0.0005
        assert cpu.metadata()["cpu_service_source"] == "given"
        assert "0.500 ms per record on one core (given," in (cpu.describe() or "")
    with CpuWorkload(WorkloadSettings(cpu_iterations=10)) as cpu:
        assert cpu.metadata()["cpu_service_source"] == "measured"
