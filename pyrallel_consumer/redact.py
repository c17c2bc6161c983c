"""Redaction of secret-bearing librdkafka settings: the one function every printout goes through
(the config's repr, errors, log lines, stats(), the bench's results files).

A setting is secret when its name says so (password, secret, private key material, OAuth
configuration, JAAS) or when its value is a callable (`oauth_cb` and friends: a callable's repr
can name a bound object holding credentials). Matching by name fragment rather than a fixed list
keeps settings of newer librdkafka versions covered (`ssl.keystore.password`,
`sasl.oauthbearer.client.secret`, `https.client.key.pem`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# Fragments of setting names whose values are secrets.
_SECRET_FRAGMENTS = (
    "password",
    "passphrase",
    "secret",
    "key.pem",  # ssl.key.pem: a private key in PEM form
    "private.key",
    "oauthbearer.config",  # may carry client credentials
    "jaas",
    "credential",
)


def is_secret(name: str, value: object = None) -> bool:
    """Whether the setting `name` (with `value`) must not be shown."""
    lowered = name.lower()
    return callable(value) or any(fragment in lowered for fragment in _SECRET_FRAGMENTS)


def redact(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `settings` with each secret value replaced by "[redacted]"."""
    return {name: REDACTED if is_secret(name, value) else value for name, value in settings.items()}


def redact_text(text: str, settings: Mapping[str, Any]) -> str:
    """`text` (an error message from librdkafka, say) with every secret value of `settings`
    that occurs in it replaced by "[redacted]"."""
    for name, value in settings.items():
        if isinstance(value, str) and value and is_secret(name, value):
            text = text.replace(value, REDACTED)
    return text
