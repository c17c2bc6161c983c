""".ci/sid-pythons' build bookkeeping, with stand-ins for debootstrap, chroot and id.

- a wanted Python that sid lacks is skipped with a message naming it, and `versions` leaves it
  out (the others are installed);
- the cached root is reused while the package list is the same, and rebuilt when it changes;
- a debootstrap failure fails the build with the log's tail and leaves no root behind.

The stand-ins only record what they were asked and make the files the script looks at
(bin/sh, usr/bin/python3.X); the real build and `run` (mounts) are exercised by .ci/run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "sid-pythons"

# debootstrap TARGET is the second-last argument; it logs its call and makes a root with a shell.
FAKE_DEBOOTSTRAP = """#!/bin/sh
echo "debootstrap $*" >>"$FAKE_LOG"
if [ -n "$FAKE_DEBOOTSTRAP_FAILS" ]; then echo "E: Couldn't download packages: gcc"; exit 1; fi
for arg; do target=$prev; prev=$arg; done
mkdir -p "$target/bin" && cp /bin/sh "$target/bin/sh"
"""
# chroot ROOT /usr/bin/env -i VAR=... CMD...: apt-cache policy answers from FAKE_SID_HAS,
# apt-get install makes usr/bin/pythonX.Y for each pythonX.Y package.
FAKE_CHROOT = """#!/bin/bash
root=$1; shift 3
while [ "${1#*=}" != "$1" ]; do shift; done
echo "chroot $*" >>"$FAKE_LOG"
case "$1 $2" in
    "apt-cache policy")
        version=${3#python}
        case " $FAKE_SID_HAS " in
            *" $version "*) echo "  Candidate: $version.0-1" ;;
            *) echo "  Candidate: (none)" ;;
        esac ;;
    "apt-get install")
        for package; do
            case "$package" in
                python3.[0-9]*-*) ;;
                python3.[0-9]*) mkdir -p "$root/usr/bin" && touch "$root/usr/bin/$package" &&
                    chmod +x "$root/usr/bin/$package" ;;
            esac
        done ;;
esac
"""
FAKE_ID = "#!/bin/sh\necho 0\n"


@pytest.fixture
def sid(tmp_path: Path) -> dict[str, str]:
    if shutil.which("flock") is None or shutil.which("bash") is None:
        pytest.skip("the script needs bash and flock (util-linux)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("debootstrap", FAKE_DEBOOTSTRAP), ("chroot", FAKE_CHROOT), ("id", FAKE_ID)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_SID_HAS": "3.14 3.15",
        "SID_PYTHONS": "3.14 3.15",
    }


def _script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def _calls(env: dict[str, str], tool: str) -> list[str]:
    log = Path(env["FAKE_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith(tool)]


def _root(env: dict[str, str]) -> Path:
    return Path(env["XDG_CACHE_HOME"]) / "pyrallel-consumer" / "sid-pythons" / "root"


def test_a_python_sid_lacks_is_skipped_with_a_message(sid: dict[str, str]) -> None:
    sid["FAKE_SID_HAS"] = "3.14"
    done = _script(sid, "versions")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.14"]
    assert "Debian sid has no python3.15 package: skipping Python 3.15" in done.stderr
    [install] = [
        call for call in _calls(sid, "chroot") if call.startswith("chroot apt-get install")
    ]
    assert "python3.14 python3.14-venv python3.14-dev" in install
    assert "python3.15" not in install


def test_the_cached_root_is_reused_until_the_package_list_changes(sid: dict[str, str]) -> None:
    assert _script(sid, "build").returncode == 0
    assert _script(sid, "build").returncode == 0
    assert len(_calls(sid, "debootstrap")) == 1
    versions = _script(sid, "versions")
    assert versions.stdout.split() == ["3.14", "3.15"]
    assert len(_calls(sid, "debootstrap")) == 1

    sid["SID_PYTHONS"] = "3.15"
    rebuilt = _script(sid, "versions")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(_calls(sid, "debootstrap")) == 2
    assert rebuilt.stdout.split() == ["3.15"]
    assert not (_root(sid) / "usr" / "bin" / "python3.14").exists()  # a fresh root, not a patch


def test_a_debootstrap_failure_names_its_log_and_leaves_no_root(sid: dict[str, str]) -> None:
    sid["FAKE_DEBOOTSTRAP_FAILS"] = "1"
    done = _script(sid, "build")
    assert done.returncode != 0
    assert "debootstrap failed (log: " in done.stderr
    assert "Couldn't download packages: gcc" in done.stderr
    assert not _root(sid).exists()
    assert _script(sid, "versions").returncode != 0  # and the next call tries again
    assert len(_calls(sid, "debootstrap")) == 2


def test_usage_without_a_command(sid: dict[str, str]) -> None:
    done = _script(sid)
    assert done.returncode == 2
    assert ".ci/sid-pythons run CMD" in done.stderr
