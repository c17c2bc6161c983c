"""The packaging contract: supported Pythons, what uv and pip install, the docs' commands.

- the metadata declares Python 3.11 to 3.15 (.ci/run tests 3.14 and 3.15 in a Debian sid root);
- the build needs a Cython that knows Python 3.15 (3.3+), and the library's own dependencies
  leave out the bench's orjson (on 3.15 a wheel only for glibc 2.39+, else a Rust build);
- uv's default dependency group brings the bench's group (the bench is no extra: the library's
  distribution does not hold it, test_distributions.py) and the tools the docs name (snakeviz for
  `uv run snakeviz <prof>`; setuptools and Cython for `make build-ext` on Python 3.12+);
- `make install` runs uv when uv is on PATH and venv + pip otherwise (checked with `make -n` and
  a PATH holding only the tools the Makefile calls, plus a stand-in `uv` or not);
- the committed uv.lock matches pyproject.toml (`uv lock --check`, when uv is installed);
- every command in a README code block runs as written after `make install`: none starts with
  a bare `python`, which only works inside an activated virtualenv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SUPPORTED = ("3.11", "3.12", "3.13", "3.14", "3.15")
READMES = (REPO / "README.md", REPO / "bench" / "README.md", REPO / "images" / "README.md")
# The Makefile's own calls while it parses and during `make -n install`.
MAKE_TOOLS = ("make", "sh", "sed", "git")


def test_metadata_declares_every_supported_python() -> None:
    project = PYPROJECT["project"]
    requires = SpecifierSet(project["requires-python"])
    assert all(requires.contains(f"{version}.0") for version in SUPPORTED)
    assert not requires.contains("3.10.0")
    classifiers = set(project["classifiers"])
    for version in SUPPORTED:
        assert f"Programming Language :: Python :: {version}" in classifiers


def test_cython_is_one_that_builds_ext_on_every_supported_python() -> None:
    bench_dist = tomllib.loads((REPO / "images" / "bench-dist" / "pyproject.toml").read_text())
    build_requires, bench_build_requires, dev = (
        {Requirement(spec).name: Requirement(spec) for spec in specs if isinstance(spec, str)}
        for specs in (
            PYPROJECT["build-system"]["requires"],
            bench_dist["build-system"]["requires"],
            PYPROJECT["dependency-groups"]["dev"],
        )
    )
    for where, requirement in (
        ("build-system", build_requires["cython"]),
        ("bench-dist build-system", bench_build_requires["cython"]),
        ("dev", dev["cython"]),
    ):
        # 3.2.x (the newest before 3.3) must not satisfy it: it predates Python 3.15.
        assert not requirement.specifier.contains("3.2.9"), f"{where}: Cython 3.3+ for 3.15"
        assert requirement.specifier.contains("3.3.0"), where


def test_orjson_is_the_bench_s_not_the_library_s() -> None:
    core = {Requirement(spec).name for spec in PYPROJECT["project"]["dependencies"]}
    assert "orjson" not in core
    bench = {Requirement(spec).name for spec in PYPROJECT["dependency-groups"]["bench"]}
    assert {"orjson", "yappi"} <= bench
    # The library never imports it (the bench falls back to the standard library's json).
    library = REPO / "pyrallel_consumer"
    importers = [
        p
        for p in library.rglob("*.py")
        if re.search(r"^\s*(import|from) orjson", p.read_text(), re.M)
    ]
    assert importers == []


def test_default_group_brings_the_bench_group_metrics_extra_and_the_documented_tools() -> None:
    default_groups = PYPROJECT["tool"]["uv"]["default-groups"]
    assert default_groups == ["dev"]
    dev = PYPROJECT["dependency-groups"]["dev"]
    assert {"include-group": "bench"} in dev
    requirements = {
        Requirement(spec).name: Requirement(spec) for spec in dev if isinstance(spec, str)
    }
    assert requirements["pyrallel-consumer"].extras == {"metrics"}
    for tool in ("snakeviz", "pytest", "setuptools", "cython", "pip"):
        assert tool in requirements, f"{tool} missing from the dev group"
    assert "yappi>=1.6" in PYPROJECT["dependency-groups"]["bench"]


def _dry_run_install(tmp_path: Path, *, with_uv: bool) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in MAKE_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the Makefile"
        (bin_dir / tool).symlink_to(found)
    if with_uv:  # never run under -n: it only has to be found
        fake_uv = bin_dir / "uv"
        fake_uv.write_text("#!/bin/sh\nexit 1\n")
        fake_uv.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"UV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VENV", "PYTHON"}
    }
    env["PATH"] = str(bin_dir)
    result = subprocess.run(
        ["make", "-n", "install", f"VENV={tmp_path / 'venv'}", "PYTHON=python3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        executable=str(bin_dir / "make"),
    )
    return result.stdout


def test_make_install_uses_uv_when_it_is_on_path(tmp_path: Path) -> None:
    commands = _dry_run_install(tmp_path, with_uv=True)
    assert re.search(r"/uv venv .*--python python3", commands)
    assert re.search(r"UV_PROJECT_ENVIRONMENT=\S+/venv \S+/uv sync", commands)
    assert "pip install" not in commands


def test_make_install_uses_venv_and_pip_without_uv(tmp_path: Path) -> None:
    commands = _dry_run_install(tmp_path, with_uv=False)
    assert "python3 -m venv" in commands
    assert "-m ensurepip" in commands  # a virtualenv made by uv has no pip
    assert "pip install --disable-pip-version-check -q -e . --group dev" in commands
    assert "uv " not in commands


def test_uv_lock_matches_pyproject() -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (.ci/run installs it)")
    result = subprocess.run(
        [uv, "lock", "--check"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"uv.lock is stale, run `uv lock`:\n{result.stderr}"


def _code_lines(markdown: str) -> list[str]:
    """Lines of fenced code blocks and of 4-space indented blocks (commands in both)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            lines.append(line.strip())
    return lines


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(REPO)))
def test_readme_commands_do_not_need_an_activated_virtualenv(readme: Path) -> None:
    bare = [line for line in _code_lines(readme.read_text()) if re.match(r"python3?(\s|$)", line)]
    assert bare == [], f"use .venv/bin/python or uv run python in {readme}: {bare}"
