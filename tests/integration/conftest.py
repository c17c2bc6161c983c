"""The `produce` fixture (described in tests/conftest.py), over the shared producer of
support.py: beside it, so that the helper and the fixture have one home."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import ProducedRecord, produce_records


@pytest.fixture
def produce() -> Callable[..., list[ProducedRecord]]:
    return produce_records
