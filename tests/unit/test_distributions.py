"""What each distribution holds, built for real and listed (the slow ones build with Cython).

- the library's wheel, built from a copy of the checkout as `pip wheel .` sees it (bench/ there
  too): `pyrallel_consumer/` and its .dist-info only, with every extension of the library, no
  `bench` (no file, no top-level name, no console script);
- the library's sdist: `pyrallel_consumer/`, the library's Cython sources, no bench/, no bench
  kernel source, no generated C; a wheel built from it (what `python -m build` does) holds the
  same library;
- the bench's wheel (pyrallel-consumer-bench, images/build_wheels.py): `bench/` with its kernel
  and the broker's pom.xml, requiring exactly this library version and the `bench` group;
- every Cython source of ext/ is a native module of exactly one of the two;
- in the checkout's virtualenv (`make install`'s editable install) `bench` still imports, from
  the checkout, whatever the working directory.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
# A checkout as a build frontend sees it, without in-place builds, caches or results.
CHECKOUT = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "pyrallel_consumer",
    "bench",
    "ext",
)
IGNORE = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.so", "*.c", "*.html", "results")
LIBRARY_NATIVE = (
    "pyrallel_consumer/_codec",
    "pyrallel_consumer/_record_path",
)


def _load_build_wheels():  # images/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("build_wheels", REPO / "images/build_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_wheels = _load_build_wheels()


def _run(*cmd: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _copy_checkout(dest: Path) -> Path:
    dest.mkdir()
    for name in CHECKOUT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=IGNORE)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def _pip_wheel(source: Path, out: Path) -> Path:
    """The one wheel `pip wheel --no-deps` builds of `source` (a tree or an sdist), with this
    environment's setuptools and Cython (no index needed)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "wheel"]
    _run(*pip, "--no-deps", "--no-build-isolation", "--wheel-dir", out, source, cwd=source.parent)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_checkout(tmp_path_factory.mktemp("dists") / "checkout")


def _assert_library_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"pyrallel_consumer-{VERSION}.dist-info/"
        top_level = [n for n in names if not n.startswith(("pyrallel_consumer/", dist_info))]
        assert top_level == [], f"{wheel.name} installs more than pyrallel_consumer: {top_level}"
        for module in LIBRARY_NATIVE:
            assert any(n.startswith(module + ".") and n.endswith(".so") for n in names), module
        assert not [n for n in names if "cpu_kernel" in n]
        # PEP 561: without the marker, a user's mypy skips the package as untyped.
        assert {"pyrallel_consumer/py.typed", "pyrallel_consumer/_codec.pyi"} <= set(names)
        # No console script either (the bench's entry point was one).
        assert dist_info + "entry_points.txt" not in names
        metadata = Parser().parsestr(archive.read(dist_info + "METADATA").decode())
    assert metadata["Name"] == "pyrallel-consumer"
    assert "bench" not in (metadata.get_all("Provides-Extra") or [])


@pytest.mark.slow
def test_library_wheel_holds_only_pyrallel_consumer_and_its_extensions(checkout: Path) -> None:
    _assert_library_wheel(_pip_wheel(checkout, checkout.parent / "wheel"))


@pytest.mark.slow
def test_library_sdist_holds_only_the_library_and_builds_the_same_wheel(checkout: Path) -> None:
    out = checkout.parent / "sdist"
    build = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", out]
    _run(*build, checkout, cwd=checkout.parent)
    (sdist,) = out.glob("*.tar.gz")
    root = f"pyrallel_consumer-{VERSION}/"
    with tarfile.open(sdist) as archive:
        names = [n.removeprefix(root) for n in archive.getnames() if n.startswith(root)]
    assert not [n for n in names if n.startswith("bench")], "the sdist holds the bench"
    sources = sorted(n for n in names if n.startswith("ext/"))
    expected = sorted(
        f"ext/{p.name}"
        for p in [*(REPO / "ext").glob("*.pyx"), *(REPO / "ext").glob("*.pxi")]
        if p.name != "cpu_kernel.pyx"
    )
    assert sources == expected  # the library's .pyx and .pxi: no bench kernel, no generated C
    assert {"pyproject.toml", "setup.py", "pyrallel_consumer/__init__.py"} <= set(names)
    _assert_library_wheel(_pip_wheel(sdist, checkout.parent / "sdist-wheel"))


@pytest.mark.slow
def test_bench_wheel_holds_the_bench_and_its_kernel_and_requires_this_library(
    tmp_path: Path,
) -> None:
    wheel = build_wheels.build_bench_wheel(tmp_path, isolation=False)
    assert wheel.name.startswith(f"pyrallel_consumer_bench-{VERSION}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"pyrallel_consumer_bench-{VERSION}.dist-info/"
        metadata = Parser().parsestr(archive.read(dist_info + "METADATA").decode())
    assert [n for n in names if not n.startswith(("bench/", dist_info))] == []
    assert any(n.startswith("bench/_cpu_kernel.") and n.endswith(".so") for n in names)
    assert {"bench/__main__.py", "bench/broker/pom.xml", "bench/containers/run.py"} <= set(names)
    requires = metadata.get_all("Requires-Dist") or []
    assert requires == [f"pyrallel-consumer=={VERSION}", *PYPROJECT["dependency-groups"]["bench"]]


def test_every_ext_source_is_a_native_module_of_exactly_one_distribution() -> None:
    assert build_wheels.LIBRARY.native == LIBRARY_NATIVE
    natives = [*build_wheels.LIBRARY.native, *build_wheels.BENCH.native]
    for source in (REPO / "ext").glob("*.pyx"):
        owners = [m for m in natives if m.rsplit("/", 1)[1] == f"_{source.stem}"]
        assert len(owners) == 1, (source.name, owners)
    assert len(natives) == len(list((REPO / "ext").glob("*.pyx")))


def test_library_metadata_names_no_bench_extra_script_or_package() -> None:
    project = PYPROJECT["project"]
    assert "bench" not in project.get("optional-dependencies", {})
    assert "scripts" not in project
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["pyrallel_consumer*"]
    # Package data: the library's typing files only (PEP 561), nothing of the bench.
    assert PYPROJECT["tool"]["setuptools"]["package-data"] == {
        "pyrallel_consumer": ["py.typed", "*.pyi"]
    }


def test_checkout_venv_imports_bench_from_the_checkout_anywhere(tmp_path: Path) -> None:
    """`make install` (an editable install) keeps `python -m bench` working from any directory
    of the checkout's virtualenv, as the library's distribution no longer holds it."""
    direct_url = importlib.metadata.distribution("pyrallel-consumer").read_text("direct_url.json")
    origin = json.loads(direct_url or "{}")
    if not origin.get("dir_info", {}).get("editable") or origin["url"] != REPO.as_uri():
        pytest.skip("this virtualenv has no editable install of this checkout (make install)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "import bench.cpu_kernel as k; print(k.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(REPO / "bench")


def test_wheel_check_refuses_a_library_wheel_that_holds_the_bench(tmp_path: Path) -> None:
    """images/build_wheels.py stops before any image is built from such a wheel."""
    wheel = tmp_path / f"pyrallel_consumer-{VERSION}-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for module in LIBRARY_NATIVE:
            archive.writestr(f"{module}.cpython-311-x86_64-linux-gnu.so", b"")
        archive.writestr(f"pyrallel_consumer-{VERSION}.dist-info/METADATA", "")
        archive.writestr("bench/__init__.py", "")
    with pytest.raises(build_wheels.WheelBuildError, match=r"outside pyrallel_consumer/ \(bench/"):
        build_wheels.check_wheel(wheel, build_wheels.LIBRARY)
