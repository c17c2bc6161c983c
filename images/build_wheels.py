"""Build the wheelhouse the container images install from: images/wheels/.

    python images/build_wheels.py [--out DIR] [--project-only] [--no-isolation]

1. The project wheel, with its compiled extensions (pyrallel_consumer._codec, bench._cpu_kernel),
   built from a copy of the working tree so that nothing is written into the tree itself (other
   builds may be running there) and no stale in-place .so file can slip into the wheel.
2. A wheel of every runtime and `bench` extra dependency (`pip wheel`), so that the image build
   runs `pip install --no-index --find-links /wheels` with no network access.

The wheels are for this interpreter and platform: run it with the Python version of the image's
BASE_IMAGE (3.11 on glibc Linux, the `python:3.11-*-bookworm` images) on the image's CPU
architecture. The project wheel is tagged `linux_<arch>`, so it also checks that the native
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
import zipfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "images" / "wheels"
PROJECT = "pyrallel_consumer"  # wheel file name prefix (normalised project name)
NATIVE_MODULES = ("pyrallel_consumer/_codec", "bench/_cpu_kernel")
# Newest glibc symbol version the native modules may need: Debian bookworm's, the base image's.
MAX_GLIBC = (2, 36)

# What a wheel build needs from the tree; everything else (results, caches, .venv) stays out.
_SOURCES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "LICENSE",
    "pyrallel_consumer",
    "bench",
    "ext",
)
_IGNORE = shutil.ignore_patterns(
    "__pycache__",
    "*.py[cod]",
    "*.so",
    "*.pyd",
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


def copy_sources(dest: Path) -> Path:
    """A clean copy of the files a wheel is built from (no build/, no in-place .so files)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in _SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_IGNORE)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def build_project_wheel(out: Path, *, isolation: bool = True, python: str = sys.executable) -> Path:
    """Build the project wheel into `out`; return its path after checking its native modules."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pyrallel-wheel-") as tmp:
        source = copy_sources(Path(tmp) / "src")
        built = Path(tmp) / "dist"
        cmd: list[str | Path] = [*_pip(python), "wheel", "--no-deps", "--wheel-dir", built]
        if not isolation:
            cmd.append("--no-build-isolation")
        _run([*cmd, source])
        wheels = sorted(built.glob(f"{PROJECT}-*.whl"))
        if len(wheels) != 1:
            raise WheelBuildError(f"expected one {PROJECT} wheel in {built}, found {wheels}")
        check_project_wheel(wheels[0])
        target = out / wheels[0].name
        shutil.copy2(wheels[0], target)
    return target


def native_members(wheel: Path) -> dict[str, str]:
    """Module path (e.g. "bench/_cpu_kernel") -> the extension file inside the wheel."""
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            for module in NATIVE_MODULES:
                if name.startswith(module + ".") and name.endswith((".so", ".pyd")):
                    found[module] = name
    return found


def _glibc_versions(data: bytes) -> list[tuple[int, ...]]:
    """glibc symbol versions an ELF file references (the GLIBC_x.y strings of .gnu.version_r)."""
    return [
        tuple(int(p) for p in m.group(1).split(b"."))
        for m in re.finditer(rb"GLIBC_(\d+(?:\.\d+)+)", data)
    ]


def check_project_wheel(wheel: Path) -> None:
    """The wheel is platform-specific and carries both native modules, loadable on bookworm."""
    if wheel.name.endswith("-none-any.whl"):
        raise WheelBuildError(
            f"{wheel.name} is a pure-Python wheel: the native extensions were "
            "not built (is a C compiler installed?)"
        )
    members = native_members(wheel)
    missing = [m for m in NATIVE_MODULES if m not in members]
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
    project_wheel: Path, out: Path, *, python: str = sys.executable, match_host: bool = True
) -> None:
    """Wheels of every runtime + bench dependency, next to the project wheel (pip wheel reuses
    downloaded wheels as they are and builds any sdist-only dependency here, on the host)."""
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
        _run([*cmd, f"{project_wheel}[bench]"])


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
            "pyrallel-consumer[bench]",
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
        help="build only the project wheel, not its dependencies",
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
        # ambiguous.
        for old in out.glob("*.whl"):
            old.unlink()
    try:
        wheel = build_project_wheel(out, isolation=args.isolation)
        print(
            f"project wheel: {wheel.name} (native: "
            f"{', '.join(sorted(native_members(wheel).values()))})"
        )
        if not args.project_only:
            build_dependency_wheels(wheel, out, match_host=args.match_host)
            check_offline_install(out)
    except WheelBuildError as exc:
        print(f"build_wheels: error: {exc}", file=sys.stderr)
        return 1
    count = len(list(out.glob("*.whl")))
    print(f"{count} wheels in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
