"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest
from codec_cases import IMPLEMENTATIONS

from pyrallel_consumer.codec import Codec, load_codec


@pytest.fixture(params=IMPLEMENTATIONS)
def codec(request: pytest.FixtureRequest) -> Codec:
    """Each codec implementation in turn (the native one only when built)."""
    return load_codec(request.param)
