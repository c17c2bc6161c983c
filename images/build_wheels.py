"""Build the wheelhouse the container images install from: images/wheels/.

    python images/build_wheels.py [--out DIR] [--project-only] [--no-isolation]

1. The library's wheel (pyrallel_consumer and its compiled extensions, nothing else) and the
   bench's (pyrallel-consumer-bench: `bench` and its kernel, bench._cpu_kernel, built from
   images/bench-dist with the checkout's bench/), each from a copy of the working tree so that
   nothing is written into the tree itself (other builds may be running there) and no stale
   in-place .so file can slip into a wheel.
2. A wheel of every dependency of the two (`pip wheel`: the library's runtime dependencies and
   the `bench` dependency group), so that the image build runs
   `pip install --no-index --find-links /wheels pyrallel-consumer-bench` with no network access.

The wheels are for this interpreter and platform: run it with the Python version of the image's
BASE_IMAGE (3.11 on glibc Linux, the `python:3.11-*-bookworm` images) on the image's CPU
architecture. Both project wheels are tagged `linux_<arch>`, so it also checks that the native
modules need no newer glibc than the base image has (bookworm: 2.36).

The build is isolated by default: pip installs exactly the pyproject.toml build requirements
(setuptools, wheel, Cython) into a throw-away environment. --no-isolation uses the current
environment's instead (faster, offline, needs setuptools>=68, wheel and Cython installed).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "images" / "wheels"
BENCH_DIST = REPO / "images" / "bench-dist"  # the bench distribution's pyproject.toml, setup.py
# Newest glibc symbol version the native modules may need: Debian bookworm's, the base image's.
MAX_GLIBC = (2, 36)


# A NamedTuple, not a dataclass: the tests load this script as a module that sys.modules lacks.
class Distribution(NamedTuple):
    """One of the two project wheels: what it may hold and which native modules it must."""

    prefix: str  # wheel file name prefix (the normalised project name)
    package: str  # its one top-level package: nothing else may be in the wheel
    native: tuple[str, ...]  # module paths ("pyrallel_consumer/_codec") of its extensions


LIBRARY = Distribution(
    "pyrallel_consumer",
    "pyrallel_consumer",
    (
        "pyrallel_consumer/_codec",
        "pyrallel_consumer/_record_path",
    ),
)
BENCH = Distribution("pyrallel_consumer_bench", "bench", ("bench/_cpu_kernel",))
# What the library's wheel is built from; everything else (bench, results, caches, .venv) stays
# out. The bench's tree: BENCH_DIST's files, bench/ and its kernel's source.
_LIBRARY_SOURCES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "pyrallel_consumer",
    "ext",
)
_BENCH_SOURCES = ("bench", "ext/cpu_kernel.pyx")
# The C files Cython generated in place stay out too: the build's own Cython regenerates them
# from the .pyx (a copied one newer than its .pyx would otherwise be compiled as it is).
_IGNORE = shutil.ignore_patterns(
    "__pycache__",
    "*.py[cod]",
    "*.so",
    "*.pyd",
    "*.c",
    "*.html",
    "results",
    ".mypy_cache",
    "*.egg-info",
    "build",
)


class WheelBuildError(RuntimeError):
    """A wheel could not be built, or it lacks what the images need."""


def _run(cmd: Sequence[str | Path]) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    done = subprocess.run([str(c) for c in cmd], check=False)
    if done.returncode != 0:
        raise WheelBuildError(
            f"command failed with exit status {done.returncode}: " + " ".join(str(c) for c in cmd)
        )


def _pip(python: str) -> list[str]:
    # --no-input/--disable-pip-version-check: the build runs unattended (make, CI).
    return [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def copy_sources(dest: Path, names: Sequence[str] = _LIBRARY_SOURCES) -> Path:
    """A clean copy of the checkout's `names` (no build/, no in-place .so files) in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = REPO / name
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_IGNORE)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def library_version() -> str:
    """The library's version, from the checkout's pyproject.toml (the images' VERSION)."""
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def bench_requirements() -> list[str]:
    """The bench distribution's dependencies: this very library version, then the `bench`
    dependency group of the library's pyproject.toml (plain requirement strings)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    group = pyproject.get("dependency-groups", {}).get("bench")
    if not group or not all(isinstance(item, str) for item in group):
        raise WheelBuildError(
            "pyproject.toml needs a [dependency-groups] bench list of requirement strings "
            "(the bench distribution's dependencies)"
        )
    return [f"pyrallel-consumer=={library_version()}", *group]


def copy_bench_sources(dest: Path) -> Path:
    """The bench distribution's tree in `dest`: images/bench-dist's files, the checkout's bench/
    and ext/cpu_kernel.pyx, and the VERSION and requirements.txt its pyproject.toml reads."""
    copy_sources(dest, _BENCH_SOURCES)
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy2(BENCH_DIST / name, dest / name)
    (dest / "VERSION").write_text(library_version() + "\n")
    (dest / "requirements.txt").write_text("\n".join(bench_requirements()) + "\n")
    return dest


def _build_wheel(
    dist: Distribution, source: Path, out: Path, *, isolation: bool, python: str
) -> Path:
    """`pip wheel` of the tree `source`, checked (check_wheel), copied into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    built = source.parent / f"{dist.prefix}-dist"
    cmd: list[str | Path] = [*_pip(python), "wheel", "--no-deps", "--wheel-dir", built]
    if not isolation:
        cmd.append("--no-build-isolation")
    _run([*cmd, source])
    wheels = sorted(built.glob(f"{dist.prefix}-*.whl"))
    if len(wheels) != 1:
        raise WheelBuildError(f"expected one {dist.prefix} wheel in {built}, found {wheels}")
    check_wheel(wheels[0], dist)
    target = out / wheels[0].name
    shutil.copy2(wheels[0], target)
    return target


def build_library_wheel(out: Path, *, isolation: bool = True, python: str = sys.executable) -> Path:
    """Build the library's wheel into `out`; return its path after checking it (check_wheel)."""
    with tempfile.TemporaryDirectory(prefix="pyrallel-wheel-") as tmp:
        source = copy_sources(Path(tmp) / "src")
        return _build_wheel(LIBRARY, source, out, isolation=isolation, python=python)


def build_bench_wheel(out: Path, *, isolation: bool = True, python: str = sys.executable) -> Path:
    """Build the bench's wheel (pyrallel-consumer-bench) into `out`; return its path."""
    with tempfile.TemporaryDirectory(prefix="pyrallel-bench-wheel-") as tmp:
        source = copy_bench_sources(Path(tmp) / "src")
        return _build_wheel(BENCH, source, out, isolation=isolation, python=python)


def native_members(wheel: Path, dist: Distribution) -> dict[str, str]:
    """Module path (e.g. "bench/_cpu_kernel") -> the extension file inside the wheel."""
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            for module in dist.native:
                if name.startswith(module + ".") and name.endswith((".so", ".pyd")):
                    found[module] = name
    return found


def foreign_members(wheel: Path, dist: Distribution) -> list[str]:
    """Files of the wheel outside its package and its .dist-info (none in a good wheel)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = (f"{dist.package}/", f"{dist.prefix}-")  # "<prefix>-<version>.dist-info/..."
    return [name for name in names if not name.startswith(top)]


def _glibc_versions(data: bytes) -> list[tuple[int, ...]]:
    """glibc symbol versions an ELF file references (the GLIBC_x.y strings of .gnu.version_r)."""
    return [
        tuple(int(p) for p in m.group(1).split(b"."))
        for m in re.finditer(rb"GLIBC_(\d+(?:\.\d+)+)", data)
    ]


def check_wheel(wheel: Path, dist: Distribution) -> None:
    """The wheel holds its one package only, is platform-specific and carries every native
    module of its distribution, loadable on bookworm; WheelBuildError saying what is wrong."""
    foreign = foreign_members(wheel, dist)
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (" ..." if len(foreign) > 5 else "")
        raise WheelBuildError(
            f"{wheel.name} holds files outside {dist.package}/ ({shown}): only "
            f"{dist.package} may be installed by it (see setup.py and pyproject.toml)"
        )
    if wheel.name.endswith("-none-any.whl"):
        raise WheelBuildError(
            f"{wheel.name} is a pure-Python wheel: the native extensions were "
            "not built (is a C compiler installed?)"
        )
    members = native_members(wheel, dist)
    missing = [m for m in dist.native if m not in members]
    if missing:
        raise WheelBuildError(f"{wheel.name} lacks the native modules {', '.join(missing)}")
    if sys.platform.startswith("linux"):
        with zipfile.ZipFile(wheel) as archive:
            for module, member in members.items():
                versions = _glibc_versions(archive.read(member))
                newest = max(versions, default=(0,))
                if newest > MAX_GLIBC:
                    raise WheelBuildError(
                        f"{member} needs glibc {'.'.join(map(str, newest))}, newer than the "
                        f"base image's {'.'.join(map(str, MAX_GLIBC))}: build the wheels on "
                        f"Debian bookworm (or point BASE_IMAGE at a newer distribution) "
                        f"[{module}]"
                    )


def host_constraints(python: str = sys.executable) -> str:
    """`name==version` of every distribution installed here (editable ones excluded), so the
    images get the dependency versions the host was tested with, not whatever is newest."""
    done = subprocess.run(
        [*_pip(python), "list", "--format=freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise WheelBuildError(f"pip list failed: {done.stderr.strip()}")
    return "\n".join(line for line in done.stdout.splitlines() if "==" in line) + "\n"


def build_dependency_wheels(
    project_wheels: Sequence[Path],
    out: Path,
    *,
    python: str = sys.executable,
    match_host: bool = True,
) -> None:
    """Wheels of every dependency of the project wheels, next to them (pip wheel reuses
    downloaded wheels as they are and builds any sdist-only dependency here, on the host). The
    library is given as a file, so the bench's `pyrallel-consumer==VERSION` resolves to it."""
    cmd: list[str | Path] = [
        *_pip(python),
        "wheel",
        "--wheel-dir",
        out,
        "--find-links",
        out,
        "--prefer-binary",
    ]
    with tempfile.TemporaryDirectory(prefix="pyrallel-constraints-") as tmp:
        if match_host:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text(host_constraints(python))
            cmd += ["--constraint", constraints]
        _run([*cmd, *project_wheels])


def check_offline_install(out: Path, *, python: str = sys.executable) -> None:
    """Resolve the image's install command against the wheelhouse alone, as the image build will."""
    _run(
        [
            *_pip(python),
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-index",
            "--find-links",
            out,
            "--quiet",
            f"pyrallel-consumer-bench=={library_version()}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="wheelhouse directory (emptied first)"
    )
    parser.add_argument(
        "--project-only",
        action="store_true",
        help="build only the two project wheels (library, bench), not their dependencies",
    )
    parser.add_argument(
        "--no-isolation",
        dest="isolation",
        action="store_false",
        help="build with this environment's setuptools/wheel/Cython",
    )
    parser.add_argument(
        "--latest-deps",
        dest="match_host",
        action="store_false",
        help="newest dependency versions instead of the ones installed here",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if out.exists():
        # Only wheels from this build: two project versions would make the image's install
        # ambiguous, and a library wheel of old would still hold `bench`.
        for old in out.glob("*.whl"):
            old.unlink()
    try:
        wheels = [
            build_library_wheel(out, isolation=args.isolation),
            build_bench_wheel(out, isolation=args.isolation),
        ]
        for wheel, dist in zip(wheels, (LIBRARY, BENCH), strict=True):
            native = ", ".join(sorted(native_members(wheel, dist).values()))
            print(f"project wheel: {wheel.name} (native: {native})")
        if not args.project_only:
            build_dependency_wheels(wheels, out, match_host=args.match_host)
            check_offline_install(out)
    except WheelBuildError as exc:
        print(f"build_wheels: error: {exc}", file=sys.stderr)
        return 1
    count = len(list(out.glob("*.whl")))
    print(f"{count} wheels in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
