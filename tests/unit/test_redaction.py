"""Secrets stay secret: the one redaction function, and every place that prints settings."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from bench.output.results import build_document
from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.config import build_config
from pyrallel_consumer.kafka_settings import check
from pyrallel_consumer.redact import REDACTED, redact, redact_text

SECRETS = {
    "sasl.password": "hunter2-pw",
    "ssl.key.password": "key-pw-123",
    "ssl.keystore.password": "store-pw-456",
    "sasl.oauthbearer.config": "clientSecret=oauth-secret-789",
    "sasl.oauthbearer.client.secret": "client-secret-000",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----abc",
}
SECURED: dict[str, Any] = {
    "bootstrap.servers": "127.0.0.1:1",
    "group.id": "g",
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "alice",
    "sasl.password": SECRETS["sasl.password"],
}


def token(config: str) -> tuple[str, float]:
    return "t", 0.0


def handle(record: object) -> None:
    """A handler that does nothing."""


def test_redact_hides_secret_settings_and_callables_only() -> None:
    settings = {**SECRETS, "oauth_cb": token, "sasl.username": "alice", "acks": "all"}
    redacted = redact(settings)
    for name in (*SECRETS, "oauth_cb"):
        assert redacted[name] == REDACTED
    assert redacted["sasl.username"] == "alice"
    assert redacted["acks"] == "all"
    assert settings["sasl.password"] == SECRETS["sasl.password"]  # a copy: the input is intact


# One setting per kind of secret name the README lists, each name holding that kind only, so
# that forgetting any one kind fails its own case.
SECRET_KINDS = {
    "password": "sasl.password",
    "passphrase": "ssl.key.passphrase",
    "secret": "sasl.oauthbearer.client.secret",
    "key.pem": "ssl.key.pem",
    "private.key": "ssl.private.key",
    "oauthbearer.config": "sasl.oauthbearer.config",
    "jaas": "sasl.jaas.config",
    "credential": "sasl.aws.credentials",
}
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_cases_cover_every_kind_the_readme_lists() -> None:
    section = README.read_text().split("### Secrets stay secret", 1)[1]
    listed = section[section.index("names with") : section.index("and every callable")]
    assert re.findall(r"`([^`]+)`", listed) == list(SECRET_KINDS)


@pytest.mark.parametrize(("kind", "name"), SECRET_KINDS.items())
def test_redact_hides_each_kind_of_secret_name(kind: str, name: str) -> None:
    assert [k for k in SECRET_KINDS if k in name] == [kind]  # the case tests one kind alone
    for spelt in (name, name.upper()):
        assert redact({spelt: "s3cr3t", "acks": "all"}) == {spelt: REDACTED, "acks": "all"}
        assert redact_text("failed with s3cr3t", {spelt: "s3cr3t"}) == f"failed with {REDACTED}"


def test_redact_text_hides_secret_values_inside_messages() -> None:
    text = redact_text("failed with hunter2-pw for alice", SECURED)
    assert "hunter2-pw" not in text
    assert "alice" in text


def test_config_repr_and_log_lines_hide_secrets(caplog: pytest.LogCaptureFixture) -> None:
    config = build_config({**SECURED, "oauth_cb": token}, topics=["t"])
    shown = repr(config)
    assert SECRETS["sasl.password"] not in shown
    assert "token" not in shown
    assert "'sasl.username': 'alice'" in shown
    with caplog.at_level(logging.INFO):
        logging.getLogger("pyrallel_consumer").info("starting with %s", config)
    assert SECRETS["sasl.password"] not in caplog.text


def test_settings_errors_hide_secrets() -> None:
    with pytest.raises(ValueError) as info:
        check({**SECURED, "sasl.mechanism": "NOPE"})
    assert SECRETS["sasl.password"] not in str(info.value)
    with pytest.raises(ValueError) as info:
        check({**SECURED, "sasl.pasword": SECRETS["sasl.password"]})
    assert SECRETS["sasl.password"] not in str(info.value)


def test_stats_hide_secrets() -> None:
    consumer = ParallelConsumer(SECURED, topics=["t"], handler=handle, engine="baseline")
    assert SECRETS["sasl.password"] not in repr(consumer.stats())


def test_results_files_hide_secrets() -> None:
    metadata = {"options": {"kafka_config": [["sasl.username", "alice"]]}, "broker": SECRETS}
    document = repr(build_document(metadata, []))
    for secret in SECRETS.values():
        assert secret not in document
    assert "alice" in document
