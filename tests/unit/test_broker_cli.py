"""bench.broker: its command-line contract, its configuration and its error messages.

The end-to-end CLI tests start real brokers (marked integration); the rest needs none.
"""

from __future__ import annotations

import base64
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from bench.broker import (
    HOST,
    BrokerError,
    ensure_kafka_jars,
    kafka_jar_dir,
    kafka_version,
    resolve_default_kind,
    start_broker,
)
from bench.broker import java as java_runtime
from bench.broker.cli import build_parser
from bench.broker.jars import POM_PATH
from bench.broker.kafka import SaslListener, kafka_server_properties, new_cluster_id
from bench.broker.supervise import LIVE_HANDLES

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = re.compile(r"^bootstrap\.servers=127\.0\.0\.1:(\d+)\n$")


# ------------------------------------------------------------------------------ pure functions


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2" 2019-01-15 LTS', 11),
    ],
)
def test_parse_java_major(output: str, major: int) -> None:
    assert java_runtime.parse_java_major(output) == major


def test_parse_java_major_rejects_garbage() -> None:
    with pytest.raises(BrokerError, match="cannot read the Java version"):
        java_runtime.parse_java_major("command not found")


def test_cluster_id_is_kafka_uuid_format() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_server_properties_describe_one_loopback_node(tmp_path: Path) -> None:
    text = kafka_server_properties(9092, 9093, tmp_path / "data")
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_sasl_listener_properties(tmp_path: Path) -> None:
    sasl = SaslListener({"alice": "pw-1", "bob": "pw-2"})
    text = kafka_server_properties(9092, 9093, tmp_path / "data", sasl, 9094)
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094"
    )
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    jaas = props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert 'user_alice="pw-1" user_bob="pw-2";' in jaas
    with pytest.raises(BrokerError, match="no quotes"):
        kafka_server_properties(1, 2, tmp_path, SaslListener({"eve": 'a"b'}), 3)


def test_kafka_version_comes_from_the_pom() -> None:
    assert POM_PATH == REPO_ROOT / "bench" / "broker" / "pom.xml"
    pom = POM_PATH.read_text()
    assert f"<kafka.version>{kafka_version()}</kafka.version>" in pom
    assert kafka_version().startswith("4.")


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.kind, args.port, args.data_dir) == (None, None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--kind", "redpanda"])


@pytest.mark.parametrize(("returncode", "published"), [(143, True), (0, True), (-9, False)])
def test_class_data_archive_is_published_only_after_a_clean_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, returncode: int, published: bool
) -> None:
    monkeypatch.setattr(java_runtime, "java_version_output", lambda java: "java 17")
    libs = tmp_path / "libs"
    flags, on_exit = java_runtime.cds_flags("/opt/java", libs, "broker")
    staging = Path(flags[0].split("=", 1)[1])
    assert flags[0].startswith("-XX:ArchiveClassesAtExit=") and staging.parent == tmp_path
    staging.write_bytes(b"archive")  # what the JVM writes at exit
    on_exit(returncode)
    archives = list(tmp_path.glob("broker-*.jsa"))
    assert len(archives) == (1 if published else 0)
    assert not staging.exists()
    if published:
        flags, _ = java_runtime.cds_flags("/opt/java", libs, "broker")
        assert flags[0] == f"-XX:SharedArchiveFile={archives[0]}"


def test_class_data_archive_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(java_runtime.CDS_ENV, "0")
    flags, _ = java_runtime.cds_flags("/opt/java", tmp_path / "libs", "broker")
    assert flags == []


# ------------------------------------------------------------------------------ defaults, errors


def _no_java() -> str:
    raise BrokerError("no java")


def test_default_kind_is_tansu_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java_runtime, "find_java", _no_java)
    assert resolve_default_kind() == "tansu"


def test_default_kind_is_kafka_with_java_and_maven(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java_runtime, "find_java", lambda: "/opt/java")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert resolve_default_kind() == "kafka"


def test_default_kind_without_maven_depends_on_the_jar_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYRALLEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(java_runtime, "find_java", lambda: "/opt/java")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert resolve_default_kind() == "tansu"
    jar_dir = kafka_jar_dir()
    (jar_dir / "libs").mkdir(parents=True)
    (jar_dir / ".complete").write_text("done")
    assert resolve_default_kind() == "kafka"


def test_missing_maven_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYRALLEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) is not installed.*--kind tansu"):
        ensure_kafka_jars()


def test_failed_jar_download_error_shows_maven_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A stand-in mvn that fails as a real one does without network access.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(
        "#!/bin/sh\necho '[ERROR] Could not resolve dependencies: network down'\nexit 1\n"
    )
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYRALLEL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BrokerError, match=r"(?s)Maven could not download.*--kind tansu.*down"):
        ensure_kafka_jars()
    assert list((tmp_path / "cache").iterdir()) == [], "a partial download was left in the cache"


def test_java_too_old_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java_runtime, "java_major", lambda java: 11)
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/java")
    with pytest.raises(BrokerError, match=r"needs Java 17\+.*Java 11.*--kind tansu"):
        java_runtime.find_java()


def test_port_taken_error() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=rf"port {port} .* already in use"):
            start_broker("tansu", port=port)


def test_unknown_kind_and_tansu_data_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="unknown broker kind"):
        start_broker("zookeeper")
    with pytest.raises(BrokerError, match="memory storage only"):
        start_broker("tansu", data_dir=tmp_path)


# ------------------------------------------------------------------------------ CLI end to end


def _child_pids(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in children.read_text().split()} if children.exists() else set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: its parent has not reaped it yet.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _all_gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        proc.kill()
        raise AssertionError(f"no ready line within {timeout} s; stderr: {proc.stderr}")
    return proc.stdout.readline()


def _run_cli_until_signal(kind: str, stop_signal: signal.Signals, ready_timeout: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.broker", "--kind", kind],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc, ready_timeout)
        match = READY_LINE.match(line)
        assert match, f"unexpected first line {line!r}"
        bootstrap = f"{HOST}:{match.group(1)}"
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert metadata.brokers, "broker listed no brokers in its metadata"
        broker_pids = _child_pids(proc.pid)
        assert broker_pids, "the launcher has no broker child process"

        proc.send_signal(stop_signal)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout == "", f"only one line may be printed on stdout, got more: {stdout!r}"
    assert not any(_alive(pid) for pid in broker_pids), "broker process left behind"
    with socket.socket() as sock:
        assert sock.connect_ex((HOST, int(match.group(1)))) != 0, "port still accepting"


@pytest.mark.integration
def test_cli_tansu_prints_one_line_and_stops_on_sigterm() -> None:
    _run_cli_until_signal("tansu", signal.SIGTERM, ready_timeout=30)


@pytest.mark.integration
@pytest.mark.slow
def test_cli_kafka_prints_one_line_and_stops_on_sigint() -> None:
    _run_cli_until_signal("kafka", signal.SIGINT, ready_timeout=120)


@pytest.mark.integration
def test_cli_reports_port_taken_on_stderr() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bench.broker", "--kind", "tansu", "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_data_dir_survives_restart(tmp_path: Path) -> None:
    from confluent_kafka.admin import NewTopic

    with start_broker("kafka", data_dir=tmp_path) as first:
        admin = AdminClient({"bootstrap.servers": first.bootstrap_servers})
        admin.create_topics([NewTopic("kept", 3, 1)])["kept"].result(timeout=30)
        del admin
    assert (tmp_path / "broker.log").is_file()
    with start_broker("kafka", data_dir=tmp_path) as second:
        admin = AdminClient({"bootstrap.servers": second.bootstrap_servers})
        topics = admin.list_topics(timeout=10).topics
        assert "kept" in topics and len(topics["kept"].partitions) == 3
        del admin


@pytest.mark.integration
@pytest.mark.slow
def test_not_ready_in_time_names_the_log_and_leaves_no_process() -> None:
    live_before = set(LIVE_HANDLES)  # the session brokers, if started
    with pytest.raises(BrokerError, match=r"did not answer .* within .*log: (\S+)") as info:
        start_broker("kafka", ready_timeout=0.01)
    log_path = Path(re.search(r"log: (\S+)", str(info.value)).group(1))  # type: ignore[union-attr]
    assert log_path.is_file()
    assert live_before == LIVE_HANDLES, "the failed broker is still registered"
    assert not (log_path.parent / "data").exists()
    shutil.rmtree(log_path.parent)


@pytest.mark.integration
@pytest.mark.slow
def test_cli_signal_during_startup_leaves_nothing_behind() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.broker", "--kind", "kafka"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not _child_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    children = _child_pids(proc.pid)
    assert children, "the launcher started no broker process"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout == ""
    # A child killed by the parent-death signal dies asynchronously: give it a moment.
    assert _all_gone(children, within=10), "broker process left behind"
