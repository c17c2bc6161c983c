"""The container images' entrypoint, compose file and wheel, checked without a Docker engine
(the Dockerfiles themselves: test_dockerfiles.py).

- every mode has an image whose entrypoint runs exactly that mode of the bench, with options the
  bench's parser accepts (the entrypoint script is run with a stand-in `python` that records the
  command it would exec, and that command is parsed by bench.cli); abbreviated options are
  refused, and the results directory is checked before the run;
- the compose file parses, runs the three mode images after a healthy broker, in sequence, with
  memory limits, CPU sets when given, and mounts bench/results;
- the wheels the images install (the library's and the bench's, pyrallel-consumer-bench) carry
  their compiled extensions and import from a fresh venv; what else each holds (nothing):
  test_distributions.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
import yaml
from dockerfile_syntax import dockerfile_instructions, exec_form

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


# --- the per-mode entrypoints ---------------------------------------------------------------------


def run_entrypoint(
    tmp_path: Path,
    args: list[str],
    env: dict[str, str] | None = None,
    prints: str = "sys.argv[1:]",
) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with a stand-in `python` on PATH that prints `prints` (its argv by
    default) as JSON."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    fake_python = fake_bin / "python"
    fake_python.write_text(
        f"#!{sys.executable}\nimport json, os, sys\nprint(json.dumps({prints}))\n"
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


def test_entrypoint_gives_the_bench_the_run_id_that_names_the_file(tmp_path: Path) -> None:
    # Without PYRALLEL_RUN_ID (compose's default) the bench must still record the id that its
    # file name carries, not one of its own.
    seen = "[sys.argv[sys.argv.index('--json-output') + 1], os.environ['PYRALLEL_RUN_ID']]"
    done = run_entrypoint(tmp_path, ["async"], prints=seen)
    path, run_id = json.loads(done.stdout)
    assert Path(path).name == f"{run_id}-async.json" and re.fullmatch(r"\d{8}T\d{6}Z", run_id)
    done = run_entrypoint(tmp_path, ["async"], {"PYRALLEL_RUN_ID": "run42"}, prints=seen)
    assert json.loads(done.stdout)[1] == "run42"


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


# --- the wheel the images install --------------------------------------------------------------


@pytest.mark.slow
def test_project_wheels_have_native_modules_and_import_from_a_fresh_venv(tmp_path: Path) -> None:
    library = build_wheels.build_library_wheel(tmp_path / "wheels")
    bench = build_wheels.build_bench_wheel(tmp_path / "wheels")
    for wheel, dist in ((library, build_wheels.LIBRARY), (bench, build_wheels.BENCH)):
        assert not wheel.name.endswith("-none-any.whl")
        members = build_wheels.native_members(wheel, dist)
        assert set(members) == set(dist.native), members
    with zipfile.ZipFile(bench) as archive:
        assert "bench/__main__.py" in archive.namelist()  # the images' `python -m bench`

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
            str(library),
            str(bench),
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
    for dist in (build_wheels.LIBRARY, build_wheels.BENCH):
        projects = list(wheelhouse.glob(f"{dist.prefix}-*.whl"))
        assert len(projects) == 1 and f"-{VERSION}-" in projects[0].name, projects
        build_wheels.check_wheel(projects[0], dist)
    build_wheels.check_offline_install(wheelhouse)


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
