"""The image builds: the wheelhouse, then the base, mode and broker images, through the API.

Every Dockerfile builds with the classic builder (what the API's build endpoint runs), BuildKit
and Podman alike. Builds run with network mode "none" by default: the bench images install
from the wheelhouse and the broker image only adds settings, so a build that reached for the
network would be a bug (and an engine without a bridge network builds them all the same).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cli import MODES
from bench.containers import local_bases
from bench.containers.engine import ContainerError, DockerError

IMAGES_DIR = local_bases.REPO_IMAGES
BUILD_WHEELS = IMAGES_DIR / "build_wheels.py"
WHEELS_DIR = IMAGES_DIR / "wheels"
REPOSITORY = "pyrallel/bench"
KAFKA_VERSION_LABEL = "io.pyrallel.kafka.version"
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # the classic builder colours a step's stderr
# How Docker, BuildKit and Podman say that pulling a base image could not reach its registry
# (DNS, no route, a proxy, TLS) or that no registry is configured for a short name (Podman).
_REGISTRY_UNREACHABLE = re.compile(
    r"dial tcp|no such host|i/o timeout|connection refused|network is unreachable"
    r"|TLS handshake timeout|server misbehaving|pinging container registry"
    r"|failed to resolve source metadata|failed to do request|no unqualified-search registries"
    r"|short-name .* did not resolve",
    re.IGNORECASE,
)
REGISTRY_HINT = (
    "the engine could not pull a base image from its registry: without a registry, build the "
    "bases here instead (make images LOCAL_BASES=1, or python -m bench.containers images "
    "--local-bases), or name bases it can pull (BASE_IMAGE=, KAFKA_IMAGE=)"
)

Log = Callable[[str], None]


def image_tag(component: str, tag: str) -> str:
    """pyrallel/bench-<component>:<tag>, component = base | broker | a mode."""
    return f"{REPOSITORY}-{component}:{tag}"


@dataclass(frozen=True)
class BuildSettings:
    """What `images` builds: tags, bases and the build options given to every build."""

    tag: str  # the images' tag (the project version by default)
    version: str  # the project version (the wheel the base installs)
    git_commit: str = "unknown"
    base_image: str | None = None  # None: Dockerfile.base's default (python:3.11 slim)
    kafka_image: str | None = None  # None: Dockerfile.broker's default (apache/kafka)
    kafka_version: str | None = None  # None: Dockerfile.broker's default
    build_args: Mapping[str, str] = field(default_factory=dict)  # extra --build-arg, to all
    network_mode: str = "none"
    no_cache: bool = False
    pull: bool = False


@dataclass(frozen=True)
class BuildStep:
    tag: str
    dockerfile: str  # relative to images/
    build_args: dict[str, str]


def plan(settings: BuildSettings) -> list[BuildStep]:
    """The builds in order: base, the three modes (on the base), the broker."""
    common = dict(settings.build_args)
    base_args = {**common, "VERSION": settings.version, "GIT_COMMIT": settings.git_commit}
    if settings.base_image:
        base_args["BASE_IMAGE"] = settings.base_image
    steps = [BuildStep(image_tag("base", settings.tag), "Dockerfile.base", base_args)]
    for mode in MODES:
        mode_args = {
            **common,
            "VERSION": settings.version,
            "PYRALLEL_BASE": image_tag("base", settings.tag),
        }
        steps.append(BuildStep(image_tag(mode, settings.tag), f"Dockerfile.{mode}", mode_args))
    broker_args = {**common, "VERSION": settings.version}
    if settings.kafka_image:
        broker_args["KAFKA_IMAGE"] = settings.kafka_image
    if settings.kafka_version:
        broker_args["KAFKA_VERSION"] = settings.kafka_version
    steps.append(BuildStep(image_tag("broker", settings.tag), "Dockerfile.broker", broker_args))
    return steps


def build_wheelhouse(log: Log, reuse: bool = False, version: str | None = None) -> None:
    """images/wheels/ from images/build_wheels.py (reused as is when asked and both project
    wheels, the library's and the bench's, of this version are present)."""
    wanted = (f"pyrallel_consumer-{version}-*.whl", f"pyrallel_consumer_bench-{version}-*.whl")
    if reuse and version and all(list(WHEELS_DIR.glob(pattern)) for pattern in wanted):
        log(f"wheels: reusing {WHEELS_DIR}")
        return
    command = [sys.executable, str(BUILD_WHEELS)]
    log("+ " + " ".join(command))
    if subprocess.run(command, check=False).returncode != 0:
        raise ContainerError("building the wheelhouse failed (see above)")


def build_image(
    client: Any,
    step: BuildStep,
    settings: BuildSettings,
    log: Log,
    *,
    context: Path = IMAGES_DIR,
    fileobj: Any = None,
) -> None:
    """One image build, its output streamed to `log`; ContainerError with the builder's own
    message when it fails. `fileobj`: a tar build context instead of the `context` directory."""
    log(f"== build {step.tag} ({step.dockerfile})")
    options: dict[str, Any] = {
        "tag": step.tag,
        "buildargs": step.build_args,
        "network_mode": settings.network_mode,
        "nocache": settings.no_cache,
        "pull": settings.pull,
        "rm": True,
        "forcerm": True,
        "decode": True,
    }
    try:
        if fileobj is not None:
            stream = client.api.build(fileobj=fileobj, custom_context=True, **options)
        else:
            stream = client.api.build(path=str(context), dockerfile=step.dockerfile, **options)
        _follow_build(stream, step, log)
    except ContainerError:  # the builder's own message, already worded (and hinted)
        raise
    except DockerError as exc:  # an API error (Podman answers a failed pull with one)
        raise ContainerError(
            with_registry_hint(f"building {step.tag} from images/{step.dockerfile}: {exc}")
        ) from None


def with_registry_hint(message: str) -> str:
    """`message`, plus what to do when it says a registry could not be reached."""
    if _REGISTRY_UNREACHABLE.search(message):
        return f"{message}\nhint: {REGISTRY_HINT}"
    return message


def _follow_build(stream: Iterable[Mapping[str, Any]], step: BuildStep, log: Log) -> None:
    recent: deque[str] = deque(maxlen=5)  # the failing step's own output says why it failed
    for chunk in stream:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            output = "".join(f"\n  {line}" for line in recent)
            raise ContainerError(
                with_registry_hint(
                    f"building {step.tag} from images/{step.dockerfile}: {detail}; its last "
                    f"output:{output}"
                )
            )
        text = _ANSI_COLOUR.sub("", str(chunk.get("stream", ""))).rstrip()
        for line in filter(None, (line.rstrip() for line in text.splitlines())):
            log(f"   {line}")
            if not line.lstrip().startswith(("Removing intermediate container", "--->")):
                recent.append(line.strip())


def healthcheck_warning(image_attrs: Mapping[str, Any]) -> str | None:
    """A warning when the broker image lost its HEALTHCHECK (Podman's OCI format drops it)."""
    config = image_attrs.get("Config") or {}
    if (config.get("Healthcheck") or {}).get("Test"):
        return None
    return (
        "the broker image has no HEALTHCHECK (Podman builds the OCI format, which drops it): "
        "`python -m bench.containers run` sets its own, but compose's service_healthy never "
        "passes; rebuild with BUILDAH_FORMAT=docker (podman build --format docker)"
    )


def build_local_bases(
    client: Any, settings: BuildSettings, log: Log, suite: str, mirror: str
) -> BuildSettings:
    """Make the local python, jre and Kafka bases; return settings that build on them."""
    flavours = (local_bases.PYTHON, local_bases.JRE)
    started = time.monotonic()
    # The two debootstraps download and unpack independently: in parallel they take about as
    # long as the bigger one.
    with ThreadPoolExecutor(max_workers=len(flavours)) as pool:
        tarballs = list(
            pool.map(lambda f: local_bases.ensure_rootfs(f, suite, mirror, log), flavours)
        )
    names = [
        local_bases.import_rootfs(client, f, t, suite)
        for f, t in zip(flavours, tarballs, strict=True)
    ]
    log(f"local bases {', '.join(names)} ready in {time.monotonic() - started:.0f} s")
    kafka = local_bases.kafka_image_name()
    version = kafka.rpartition(":")[2]
    step = BuildStep(
        kafka,
        "local/Dockerfile.kafka",
        {**settings.build_args, "JRE_BASE": names[1], "KAFKA_VERSION": version},
    )
    # The Kafka base's RUN needs no network either; its context is assembled, not a directory.
    context = local_bases.kafka_context(local_bases.kafka_jars())
    build_image(client, step, settings, log, fileobj=context)
    return BuildSettings(
        tag=settings.tag,
        version=settings.version,
        git_commit=settings.git_commit,
        base_image=names[0],
        kafka_image=kafka,
        kafka_version=version,
        build_args=settings.build_args,
        network_mode=settings.network_mode,
        no_cache=settings.no_cache,
        pull=False,  # local images: nothing to pull
    )


def kafka_version_of(image: str | None) -> str | None:
    """The version in a KAFKA_IMAGE reference like apache/kafka:4.1.1 (None when it has none)."""
    if image is None:
        return None
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    return tag if re.fullmatch(r"\d+\.\d+\.\d+", tag) else None


def build_all(
    client: Any,
    settings: BuildSettings,
    log: Log,
    *,
    reuse_wheels: bool = False,
) -> dict[str, float]:
    """The wheelhouse and every image of `plan(settings)`; returns seconds per step."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    build_wheelhouse(log, reuse=reuse_wheels, version=settings.version)
    timings["wheels"] = time.monotonic() - started
    for step in plan(settings):
        started = time.monotonic()
        build_image(client, step, settings, log)
        timings[step.tag] = time.monotonic() - started
    broker = client.images.get(image_tag("broker", settings.tag))
    warning = healthcheck_warning(broker.attrs)
    if warning:
        log(f"warning: {warning}")
    return timings
