"""librdkafka settings: checked when a ParallelConsumer is built, so a typo fails at once with
the closest known name instead of in run(), after the group was joined; and the subset a
producer to the same cluster needs (the dead-letter producer).

The check builds a throwaway `confluent_kafka.Consumer`, which is where librdkafka validates a
configuration, and closes it at once. It cannot connect: the bootstrap servers are left out
(librdkafka connects to them on creation), Python callbacks are left out (a real `oauth_cb`
would be called for a token), and its log goes nowhere.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException

from pyrallel_consumer.redact import redact_text

# librdkafka's property names (2.x, global and topic level; the C API's *_cb pointers left
# out), and confluent-kafka's Python callbacks, for the "did you mean" hint only:
# librdkafka itself decides what is unknown. Collected by probing librdkafka 2.16 with every
# name its library file mentions; names of newer versions just get no hint.
KNOWN_SETTINGS: frozenset[str] = frozenset(
    """
    acks allow.auto.create.topics api.version.fallback.ms api.version.request
    api.version.request.timeout.ms auto.commit.enable auto.commit.interval.ms
    auto.offset.reset batch.num.messages batch.size bootstrap.servers broker.address.family
    broker.address.ttl broker.version.fallback builtin.features check.crcs client.dns.lookup
    client.id client.rack client.software.name client.software.version compression.codec
    compression.level compression.type connections.max.idle.ms consume.callback.max.messages
    coordinator.query.interval.ms debug delivery.report.only.error delivery.timeout.ms
    enable.auto.commit enable.auto.offset.store enable.gapless.guarantee enable.idempotence
    enable.metrics.push enable.partition.eof enable.random.seed
    enable.sasl.oauthbearer.unsecure.jwt enable.sparse.connections
    enable.ssl.certificate.verification fetch.error.backoff.ms fetch.max.bytes
    fetch.message.max.bytes fetch.min.bytes fetch.queue.backoff.ms fetch.wait.max.ms
    group.id group.instance.id group.protocol group.protocol.type group.remote.assignor
    heartbeat.interval.ms https.ca.location https.ca.pem interceptors isolation.level
    linger.ms log.connection.close log.queue log.thread.name max.in.flight
    max.in.flight.requests.per.connection max.partition.fetch.bytes max.poll.interval.ms
    max.poll.records message.copy.max.bytes message.max.bytes message.send.max.retries
    message.timeout.ms metadata.broker.list metadata.max.age.ms
    metadata.recovery.rebootstrap.trigger.ms metadata.recovery.strategy
    metadata.request.timeout.ms offset.store.method offset.store.path
    offset.store.sync.interval.ms opaque partition.assignment.strategy partitioner
    plugin.library.paths produce.offset.report queue.buffering.backpressure.threshold
    queue.buffering.max.kbytes queue.buffering.max.messages queue.buffering.max.ms
    queued.max.messages.kbytes queued.min.messages queuing.strategy
    receive.message.max.bytes reconnect.backoff.jitter.ms reconnect.backoff.max.ms
    reconnect.backoff.ms request.required.acks request.timeout.ms retries
    retry.backoff.max.ms retry.backoff.ms sasl.jaas.config sasl.kerberos.keytab
    sasl.kerberos.kinit.cmd sasl.kerberos.min.time.before.relogin sasl.kerberos.principal
    sasl.kerberos.service.name sasl.mechanism sasl.mechanisms
    sasl.oauthbearer.assertion.algorithm sasl.oauthbearer.assertion.claim.aud
    sasl.oauthbearer.assertion.claim.exp.seconds sasl.oauthbearer.assertion.claim.iss
    sasl.oauthbearer.assertion.claim.jti.include
    sasl.oauthbearer.assertion.claim.nbf.seconds sasl.oauthbearer.assertion.claim.sub
    sasl.oauthbearer.assertion.file sasl.oauthbearer.assertion.jwt.template.file
    sasl.oauthbearer.assertion.private.key.file
    sasl.oauthbearer.assertion.private.key.passphrase
    sasl.oauthbearer.assertion.private.key.pem sasl.oauthbearer.client.credentials.client.id
    sasl.oauthbearer.client.credentials.client.secret sasl.oauthbearer.client.id
    sasl.oauthbearer.client.secret sasl.oauthbearer.config sasl.oauthbearer.extensions
    sasl.oauthbearer.grant.type sasl.oauthbearer.metadata.authentication.type
    sasl.oauthbearer.method sasl.oauthbearer.scope sasl.oauthbearer.sub.claim.name
    sasl.oauthbearer.token.endpoint.url sasl.password sasl.username security.protocol
    session.timeout.ms share.acknowledgement.mode socket.blocking.max.ms
    socket.connection.setup.timeout.ms socket.keepalive.enable socket.max.fails
    socket.nagle.disable socket.receive.buffer.bytes socket.send.buffer.bytes
    socket.timeout.ms ssl.ca.certificate.stores ssl.ca.location ssl.ca.pem
    ssl.certificate.location ssl.certificate.pem ssl.cipher.suites ssl.crl.location
    ssl.curves.list ssl.endpoint.identification.algorithm ssl.engine.id ssl.engine.location
    ssl.key.location ssl.key.password ssl.key.pem ssl.keystore.location
    ssl.keystore.password ssl.providers ssl.sigalgs.list ssl.truststore.location
    statistics.interval.ms sticky.partitioning.linger.ms topic.blacklist
    topic.metadata.propagation.max.ms topic.metadata.refresh.fast.cnt
    topic.metadata.refresh.fast.interval.ms topic.metadata.refresh.interval.ms
    topic.metadata.refresh.sparse transaction.timeout.ms transactional.id
    """.split()  # noqa: SIM905  # a word list reads better than 190 quoted strings
) | {"oauth_cb", "error_cb", "stats_cb", "throttle_cb", "logger", "on_commit", "on_delivery"}

# Settings confluent-kafka-python takes as Python callables/objects rather than librdkafka strings.
PYTHON_CALLBACKS = frozenset(
    {"oauth_cb", "error_cb", "stats_cb", "throttle_cb", "logger", "on_commit", "on_delivery"}
)

# Where librdkafka would connect on creation: left out of the throwaway client.
_CONNECTING = ("bootstrap.servers", "metadata.broker.list")

# Consumer-only settings (librdkafka's "C" scope, plus confluent-kafka's on_commit): a producer
# warns about each one, so the dead-letter producer does not get them.
CONSUMER_ONLY = frozenset(
    {
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        "max.poll.records",
        "enable.auto.commit",
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.error.backoff.ms",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        "isolation.level",
        "consume.callback.max.messages",
        "consume_cb",
        "rebalance_cb",
        "offset_commit_cb",
        "enable.partition.eof",
        "check.crcs",
        "share.acknowledgement.mode",
        "on_commit",
    }
)

_QUIET = logging.getLogger("pyrallel_consumer.settings_check")
_QUIET.propagate = False  # the throwaway client's log lines (an unreadable CA file, say)
_QUIET.addHandler(logging.NullHandler())

_NAMED = re.compile(r'"([^"]+)"')


def closest(name: str, known: frozenset[str] | set[str] | tuple[str, ...]) -> str | None:
    """The known name nearest to `name` (difflib), or None when none is near."""
    found = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return found[0] if found else None


def check(settings: Mapping[str, Any], what: str = "kafka_config") -> None:
    """Let librdkafka validate `settings` without connecting; ValueError naming the setting
    (and the closest known name for an unknown one) when it rejects them. Secret values never
    appear in the message."""
    probe: dict[str, Any] = {}
    for name, value in settings.items():
        if name in _CONNECTING:
            continue
        if name in PYTHON_CALLBACKS:
            if name == "oauth_cb" and settings.get("sasl.oauthbearer.method") != "oidc":
                # Stands in for the token callback: confluent-kafka would call a real one (and
                # wait up to a second for its token) while building the client.
                probe["enable.sasl.oauthbearer.unsecure.jwt"] = True
            continue
        probe[name] = value
    probe["logger"] = _QUIET
    probe.setdefault("group.id", "settings-check")
    try:
        Consumer(probe).close()
    except KafkaException as exc:
        raise ValueError(_explain(str(exc.args[0].str()), settings, what)) from None
    except (TypeError, ValueError) as exc:  # confluent-kafka's own checks of Python values
        raise ValueError(f"{what}: {redact_text(str(exc), settings)}") from None


def _explain(message: str, settings: Mapping[str, Any], what: str) -> str:
    message = redact_text(message, settings)
    named = _NAMED.search(message)
    if "No such configuration property" in message and named:
        name = named.group(1)
        hint = closest(name, KNOWN_SETTINGS)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        return (
            f"{what}: {name!r} is not a librdkafka setting{suggestion} "
            "(settings: https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)"
        )
    return f"{what}: librdkafka rejected the settings: {message}"


def producer_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of `settings` a producer to the same cluster can use: every connection,
    security and client setting (callables such as `oauth_cb` included), none of the
    consumer-only ones."""
    return {name: value for name, value in settings.items() if name not in CONSUMER_ONLY}


# Exactly once (transactional_id). librdkafka's default transaction.timeout.ms; the longest a
# transaction's commit may take (flushing its outputs, sending the offsets, committing).
DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000
COMMIT_TIMEOUT_S = 10.0


def transaction_span_s(commit_interval_s: float, revoke_grace_s: float) -> float:
    """The longest a transaction stays open, in seconds: one commit interval, or a revoke's
    grace (a revoke commits before its grace and after it), plus its commit. The broker aborts
    a transaction older than transaction.timeout.ms, so that setting must exceed this."""
    return max(commit_interval_s, revoke_grace_s) + COMMIT_TIMEOUT_S


def check_transactional_id(
    tid: object,
    kafka: Mapping[str, Any],
    output_producer_config: Mapping[str, Any] | None,
    dlq_producer_config: Mapping[str, Any] | None,
    commit_interval_s: float,
    revoke_grace_s: float,
) -> str | None:
    """The `transactional_id` option, checked against the settings exactly once depends on:
    no transactional.id among the librdkafka settings, the transaction timeout
    (transaction_span_s), read_committed inputs, dead letters written by the same producer.
    Raises ValueError naming the setting and the fix."""
    for name, settings in (
        ("kafka_config", kafka),
        ("output_producer_config", output_producer_config or {}),
        ("dlq_producer_config", dlq_producer_config or {}),
    ):
        if "transactional.id" in settings:
            raise ValueError(
                f"transactional.id in {name}: the library's producers would inherit it without "
                "running transactions (every write refused); give it as "
                "transactional_id='...' instead, which turns on exactly once"
            )
    if tid is None:
        return None
    if not isinstance(tid, str) or not tid:
        raise ValueError(f"transactional_id must be a non-empty string or None, got {tid!r}")
    if dlq_producer_config is not None:
        raise ValueError(
            "with transactional_id, dead letters join the output producer's transactions: "
            "drop dlq_producer_config (output_producer_config gives that producer's settings)"
        )
    isolation = str(kafka.get("isolation.level", "read_committed"))
    if isolation != "read_committed":
        raise ValueError(
            f"transactional_id needs isolation.level=read_committed in kafka_config (got "
            f"{isolation!r}): exactly once holds only for inputs whose own transactions "
            "committed"
        )
    # The producer's settings: given, or derived from kafka_config (which may set it too).
    producer = output_producer_config if output_producer_config is not None else kafka
    timeout_ms = int(producer.get("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS))
    needed_s = transaction_span_s(commit_interval_s, revoke_grace_s)
    if timeout_ms < needed_s * 1000:
        raise ValueError(
            f"transaction.timeout.ms={timeout_ms} is too short for this consumer: a "
            f"transaction stays open up to {needed_s:.1f} s (the longer of commit_interval_s="
            f"{commit_interval_s} and revoke_grace_s={revoke_grace_s}, plus "
            f"{COMMIT_TIMEOUT_S:.0f} s to commit it); raise transaction.timeout.ms in "
            "output_producer_config (the brokers' transaction.max.timeout.ms caps it, 900000 "
            "by default) or shorten those options"
        )
    return tid
