"""The Java runtime of the Apache Kafka broker: finding a Java 17+, and the class-data-sharing
archive that halves the broker's start-up."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.broker.supervise import BrokerError

MIN_JAVA_MAJOR = 17
# Set to 0 to run the JVMs without the class-data-sharing archives described in cds_flags.
CDS_ENV = "PYRALLEL_KAFKA_CDS"


def find_java() -> str:
    """Path of a java >= 17: $JAVA_HOME/bin/java first, then PATH; BrokerError otherwise."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else None
    if candidate is None or not os.access(candidate, os.X_OK):
        candidate = shutil.which("java")
    if candidate is None:
        raise BrokerError(
            f"Java {MIN_JAVA_MAJOR}+ is required for the Apache Kafka broker but `java` was not "
            "found (set JAVA_HOME or install e.g. openjdk-17-jre-headless); or use "
            "`--kind tansu`, or pass --bootstrap-servers to use a running broker."
        )
    major = java_major(candidate)
    if major < MIN_JAVA_MAJOR:
        raise BrokerError(
            f"Apache Kafka 4 needs Java {MIN_JAVA_MAJOR}+, but {candidate} is Java {major}: "
            "set JAVA_HOME to a newer JDK, or use `--kind tansu`, or pass --bootstrap-servers."
        )
    return candidate


def java_major(java: str) -> int:
    return parse_java_major(java_version_output(java))


@functools.lru_cache(maxsize=8)
def java_version_output(java: str) -> str:
    """What `java -version` prints (it writes to stderr)."""
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"could not run `{java} -version`: {exc}; use `--kind tansu`") from exc
    return result.stderr + result.stdout


def parse_java_major(version_output: str) -> int:
    """Major version from ``java -version`` output ('1.8.0_392' -> 8, '17.0.15' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        raise BrokerError(f"cannot read the Java version from: {version_output.strip()[:200]!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:  # pre-9 scheme: 1.<major>
        major = int(match.group(2))
    return major


def cds_flags(java: str, libs: Path, name: str) -> tuple[list[str], Callable[[int | None], None]]:
    """JVM flags for an application class-data-sharing (AppCDS) archive, and an exit hook.

    Loading and verifying ~40 jars' classes is most of the broker's start-up: with an archive
    of them the broker is ready in about half the time (2.4 s -> 1.3 s measured). The first run
    writes the archive at JVM exit (-XX:ArchiveClassesAtExit) under a private name; the exit
    hook publishes it with an atomic rename only after a clean exit, so a killed JVM never
    leaves a truncated archive. Later runs map it (-XX:SharedArchiveFile); the JVM silently
    ignores an archive that does not match (another JDK build, other jars), so the worst case
    is the normal start-up time. The archive lives next to the jars, keyed by the Java build.
    """

    def nothing(_returncode: int | None) -> None:
        return None

    if os.environ.get(CDS_ENV, "1") == "0":
        return [], nothing
    java_id = hashlib.sha256(f"{java}\n{java_version_output(java)}".encode()).hexdigest()[:10]
    archive = libs.parent / f"{name}-{java_id}.jsa"
    quiet = "-Xlog:cds=off,cds+dynamic=off"  # dump warnings ("Skipping ...") flood the log
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", quiet], nothing
    staging = archive.with_name(f"{archive.name}.partial-{uuid.uuid4().hex[:8]}")

    def publish(returncode: int | None) -> None:
        # 0: normal exit; 143: the JVM's exit status after a SIGTERM-triggered clean shutdown.
        if returncode in (0, 143) and staging.is_file() and staging.stat().st_size > 0:
            os.replace(staging, archive)
        else:
            staging.unlink(missing_ok=True)

    return [f"-XX:ArchiveClassesAtExit={staging}", quiet], publish
