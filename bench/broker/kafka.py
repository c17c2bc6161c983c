"""Apache Kafka 4.x in KRaft mode: one node acting as broker and controller on loopback.

Storage is formatted per start in a temporary directory unless a data directory is given; the
broker log is written to a file (``BrokerHandle.log_path``). Jars: jars.py; Java: java.py.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.broker import java as java_runtime
from bench.broker.jars import ensure_kafka_jars, kafka_version
from bench.broker.supervise import HOST, BrokerError, BrokerHandle, free_port, spawn, tail

KIND_KAFKA = "kafka"

# Broker settings for a single node. Replication factors and ISR sizes of 1 because there is
# only one broker; no initial rebalance delay so tests and benchmarks do not wait 3 s per group;
# a low minimum session timeout so clients may use the short session.timeout.ms values the
# tests use with tansu (the Kafka default minimum of 6000 ms would reject them).
_SINGLE_NODE_SETTINGS: dict[str, str] = {
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


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (22 chars).

    Kafka refuses ids that start with '-' (they look like command-line flags), as it does."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class SaslListener:
    """A second client listener, SASL_PLAINTEXT, for tests of secured clusters: PLAIN with
    `users` (user name -> password), and OAUTHBEARER with Kafka's unsecured token validator (it
    accepts any unsigned JWT that has `sub` and `exp`: test clusters only), the mechanism an
    `oauth_cb` token callback uses. The JAAS configurations go into server.properties
    (listener.name.sasl_plaintext.<mechanism>.sasl.jaas.config), so no JAAS file is needed. The
    PLAINTEXT listener stays for the broker's own traffic and readiness."""

    users: Mapping[str, str]
    port: int | None = None


def kafka_server_properties(
    port: int,
    controller_port: int,
    log_dirs: Path,
    sasl: SaslListener | None = None,
    sasl_port: int | None = None,
) -> str:
    """server.properties for a single combined broker+controller on loopback (with `sasl`, a
    SASL_PLAINTEXT listener on `sasl_port` as well)."""
    settings = dict(_SINGLE_NODE_SETTINGS)
    listeners = f"PLAINTEXT://{HOST}:{port}"
    settings.update(
        {
            # A static voter set: with one node it needs no dynamic-quorum bootstrap.
            "controller.quorum.voters": f"1@{HOST}:{controller_port}",
            "listeners": f"{listeners},CONTROLLER://{HOST}:{controller_port}",
            "advertised.listeners": listeners,
            "log.dirs": str(log_dirs),
        }
    )
    if sasl is not None:
        if not sasl.users:
            raise BrokerError("a SASL listener needs at least one user")
        for name, password in sasl.users.items():
            # Both are written inside a quoted JAAS string in a .properties file, where
            # backslashes are escapes: refuse rather than escape twice.
            if not name.isidentifier() or any(c in password for c in '"\\\n'):
                raise BrokerError(
                    f"SASL user {name!r}: use letters, digits and _ in names, and no quotes, "
                    "backslashes or newlines in passwords"
                )
        secured = f"SASL_PLAINTEXT://{HOST}:{sasl_port}"
        users = " ".join(f'user_{name}="{password}"' for name, password in sasl.users.items())
        settings.update(
            {
                "listeners": f"{listeners},{secured},CONTROLLER://{HOST}:{controller_port}",
                "advertised.listeners": f"{listeners},{secured}",
                "listener.security.protocol.map": (
                    "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
                ),
                "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
                ),
                "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
                ),
            }
        )
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def start_kafka(
    port: int | None, data_dir: Path | None, sasl: SaslListener | None = None
) -> BrokerHandle:
    """Spawn the broker (not yet ready: the caller waits); BrokerError with a remedy. With
    `sasl`, the handle's `sasl_bootstrap_servers` is the SASL_PLAINTEXT listener."""
    java = java_runtime.find_java()
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
    sasl_port = None
    if sasl is not None:
        sasl_port = sasl.port or free_port(exclude={port, controller_port})
    log_dirs = workdir / "data"
    config = workdir / "server.properties"
    config.write_text(kafka_server_properties(port, controller_port, log_dirs, sasl, sasl_port))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(_LOG4J2_CONFIG)
    log_path = workdir / "broker.log"
    classpath = f"{libs}{os.sep}*"
    log4j_flag = f"-Dlog4j2.configurationFile={log4j}"

    try:
        if not (log_dirs / "meta.properties").is_file():
            _format_storage(java, classpath, log4j_flag, config, log_path)
        cds, on_exit = java_runtime.cds_flags(java, libs, "broker")
        cmd = [java, *_JVM_FLAGS, *cds, log4j_flag, "-cp", classpath, "kafka.Kafka", str(config)]
        process = spawn(cmd, log_path, cwd=workdir)
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
        sasl_bootstrap_servers=None if sasl_port is None else f"{HOST}:{sasl_port}",
    )


def _format_storage(
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
            f"log: {log_path}\n{tail(log_path)}"
        )
