"""Base images made on this machine, for engines that reach no container registry.

- A Debian root file system from `debootstrap --variant=minbase` with a few packages, imported
  as an image (`tar -C rootfs -c . | docker import -`). Two flavours: `python` (python3 and
  python3-venv: what Dockerfile.base needs of BASE_IMAGE) and `jre` (openjdk-17-jre-headless:
  the Java the Kafka base runs on). Needs root and a Debian mirror (the apt sources' one is the
  default); the tarball is cached, so only the first build downloads anything.
- A Kafka base (images/local/Dockerfile.kafka) from the jars bench/broker/pom.xml resolves from
  Maven Central (the same cache as `make broker`), on the `jre` base: KAFKA_IMAGE for
  Dockerfile.broker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.broker.jars import cache_dir, ensure_kafka_jars, kafka_version

REPO_IMAGES = Path(__file__).resolve().parents[2] / "images"
LOCAL_DIR = REPO_IMAGES / "local"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class LocalBaseError(RuntimeError):
    """A local base image could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class Flavour:
    """A debootstrap root file system: its image name and the packages added to minbase."""

    name: str
    repository: str
    packages: tuple[str, ...]


PYTHON = Flavour("python", "pyrallel/local-python", ("python3", "python3-venv"))
JRE = Flavour("jre", "pyrallel/local-jre", ("openjdk-17-jre-headless",))
KAFKA_REPOSITORY = "pyrallel/local-kafka"
# What leaves the root file system before it is packed: apt's downloads and indexes (the image
# never runs apt: it has no network), about a third of its size.
_PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists")


def image_name(flavour: Flavour, suite: str = DEFAULT_SUITE) -> str:
    return f"{flavour.repository}:{suite}"


def kafka_image_name() -> str:
    return f"{KAFKA_REPOSITORY}:{kafka_version()}"


def rootfs_cache_path(flavour: Flavour, suite: str = DEFAULT_SUITE) -> Path:
    """The cached tarball, keyed by suite and package list (another list, another tarball)."""
    key = hashlib.sha256(f"{suite} minbase {' '.join(flavour.packages)}".encode()).hexdigest()
    return cache_dir() / "images" / f"debian-{suite}-{flavour.name}-{key[:10]}.tar"


def debootstrap_command(
    flavour: Flavour, target: Path, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR
) -> list[str]:
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(flavour.packages)}",
        suite,
        str(target),
        mirror,
    ]


def ensure_rootfs(
    flavour: Flavour,
    suite: str = DEFAULT_SUITE,
    mirror: str = DEFAULT_MIRROR,
    log: Callable[[str], None] = print,
) -> Path:
    """The cached root file system tarball of `flavour`, made with debootstrap when missing."""
    tarball = rootfs_cache_path(flavour, suite)
    if tarball.is_file():
        log(f"{flavour.name} base: cached root file system {tarball}")
        return tarball
    if shutil.which("debootstrap") is None:
        raise LocalBaseError(
            "debootstrap is not installed (apt-get install debootstrap), and no root file system "
            f"is cached at {tarball}; or pass BASE_IMAGE/KAFKA_IMAGE images you have"
        )
    if os.geteuid() != 0:
        raise LocalBaseError(
            "debootstrap needs root: run this step as root (sudo), or copy a root file system "
            f"tarball made elsewhere to {tarball}"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{flavour.name}-", dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        command = debootstrap_command(flavour, rootfs, suite, mirror)
        log("+ " + " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise LocalBaseError(
                f"debootstrap failed (exit {done.returncode}); check that the mirror {mirror} "
                f"is reachable (--debian-mirror to use another):\n{tail}"
            )
        for relative in _PRUNE:
            shutil.rmtree(rootfs / relative, ignore_errors=True)
            (rootfs / relative).mkdir(parents=True, exist_ok=True)
        staging = Path(tmp) / "rootfs.tar"
        # --numeric-owner: the image's uids are the rootfs's, whatever this host calls them.
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(staging), "."], check=True
        )
        staging.replace(tarball)  # atomic: a cached tarball is always a complete one
    log(f"{flavour.name} base: root file system cached in {tarball}")
    return tarball


def import_rootfs(client: Any, flavour: Flavour, tarball: Path, suite: str = DEFAULT_SUITE) -> str:
    """`docker import` of the tarball (skipped when the image exists); returns the image name."""
    name = image_name(flavour, suite)
    if _image_exists(client, name):
        return name
    repository, _, tag = name.partition(":")
    answer = client.api.import_image_from_file(
        str(tarball),
        repository=repository,
        tag=tag,
        changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    # Podman 4's compatible API ignores `tag` (it tags "latest"): tag the imported id ourselves.
    image_id = imported_image_id(str(answer))
    if image_id is None:
        raise LocalBaseError(f"importing {tarball} as {name} failed: {str(answer).strip()[:300]}")
    client.images.get(image_id).tag(repository, tag)
    return name


def imported_image_id(answer: str) -> str | None:
    """The image id in an import's answer: JSON lines, one of them {"status": "sha256:..."}."""
    for line in answer.splitlines():
        try:
            status = json.loads(line).get("status", "")
        except (ValueError, AttributeError):
            continue
        if isinstance(status, str) and status.startswith("sha256:"):
            return status
    return None


def _image_exists(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- the Kafka base ---------------------------------------------------------------------------

_CONTEXT_FILES = {  # build context name -> (file in images/local, mode)
    "Dockerfile": ("Dockerfile.kafka", 0o644),
    "kafka-run.sh": ("kafka-run.sh", 0o755),
    "kafka-configs.sh": ("kafka-configs.sh", 0o755),
    "log4j2.properties": ("log4j2.properties", 0o644),
}


def kafka_context_members(jars: Path) -> Iterator[tuple[str, Path, int]]:
    """(name in the build context, source file, mode) of the Kafka base's context."""
    for name, (source, mode) in _CONTEXT_FILES.items():
        yield name, LOCAL_DIR / source, mode
    found = sorted(jars.glob("*.jar"))
    if not any(jar.name.startswith("kafka_") for jar in found):
        raise LocalBaseError(f"{jars} holds no Kafka broker jar (kafka_<scala>-<version>.jar)")
    for jar in found:
        yield f"libs/{jar.name}", jar, 0o644


def kafka_context(jars: Path) -> io.BytesIO:
    """The Kafka base's build context as a tar archive in memory (the jars are about 45 MB)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, source, mode in kafka_context_members(jars):
            info = archive.gettarinfo(str(source), arcname=name)
            info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "", ""
            with source.open("rb") as data:
                archive.addfile(info, data)
    buffer.seek(0)
    return buffer


def kafka_jars() -> Path:
    """The broker's jars, resolved by Maven into the cache when missing (bench.broker)."""
    try:
        return ensure_kafka_jars()
    except Exception as exc:  # BrokerError: Maven missing or the download failed
        raise LocalBaseError(f"the Kafka base needs the broker's jars: {exc}") from exc
