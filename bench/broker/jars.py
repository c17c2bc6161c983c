"""The Apache Kafka jars: resolved from Maven Central by pom.xml (next to this file) into a
cache outside the repo, and reused afterwards.

Cache root: ``$PYRALLEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyrallel-consumer`` or
``~/.cache/pyrallel-consumer``. Maven (``mvn``) is needed only for the first download.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.broker.supervise import LOG_TAIL_LINES, BrokerError

POM_PATH = Path(__file__).resolve().parent / "pom.xml"
_COMPLETE_MARKER = ".complete"


def kafka_version() -> str:
    """The Kafka version pinned in pom.xml (``"4.1.1"``)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM_PATH.read_text())
    if match is None:
        raise BrokerError(f"{POM_PATH} has no <kafka.version> property")
    return match.group(1).strip()


def cache_dir() -> Path:
    """Root of the jar cache: $PYRALLEL_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache."""
    override = os.environ.get("PYRALLEL_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pyrallel-consumer"


def kafka_jar_dir() -> Path:
    """Cache directory for the current pom: keyed by Kafka version and a hash of the pom, so
    an edited pom (another log4j, slf4j...) never reuses jars resolved from the old one."""
    digest = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()[:10]
    return cache_dir() / f"kafka-{kafka_version()}-{digest}"


def jars_cached(target: Path) -> bool:
    """Whether `target` holds a complete download (an interrupted one never counts)."""
    return (target / _COMPLETE_MARKER).is_file() and (target / "libs").is_dir()


def ensure_kafka_jars() -> Path:
    """Return the directory holding the Kafka jars, downloading them with Maven if needed.

    Raises BrokerError naming the remedy when Maven is missing or the download fails.
    """
    target = kafka_jar_dir()
    if jars_cached(target):
        return target / "libs"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is not installed, and the Apache Kafka jars are not cached in "
            f"{target}. Install Maven (e.g. `apt-get install maven`), or use `--kind tansu`, "
            "or pass --bootstrap-servers to use a running broker."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download next to the target and rename: a concurrent or interrupted download never
    # leaves a half-filled cache that a later run would trust.
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
    try:
        _run_maven(mvn, staging / "libs")
        (staging / _COMPLETE_MARKER).write_text(kafka_version() + "\n")
        try:
            staging.rename(target)
        except OSError:
            if not jars_cached(target):  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "libs"


def _run_maven(mvn: str, out_dir: Path) -> None:
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM_PATH),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        raise BrokerError(
            f"Maven could not download the Apache Kafka {kafka_version()} jars "
            f"(exit {result.returncode}): check network access to Maven Central or your "
            "~/.m2/settings.xml mirror/proxy; or use `--kind tansu`, or pass "
            "--bootstrap-servers to use a running broker.\n"
            f"command: {' '.join(cmd)}\n" + "\n".join(output[-LOG_TAIL_LINES:])
        )
