"""Both implementations of the record-tracking structures, for tests that run against each:
the pure-Python twins and the native (Cython) ones (pyrallel_consumer/native.py).

`IMPLEMENTATIONS` parametrizes a fixture; "native" is skipped when the extensions are not built.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from pyrallel_consumer.native import MODULES, PURE_MODULES, import_native


def _built() -> bool:
    try:
        for structure in MODULES:
            import_native(structure)
    except ImportError:
        return False
    return True


NATIVE_BUILT = _built()
needs_native = pytest.mark.skipif(
    not NATIVE_BUILT, reason="native structures not built (run `make build-ext`)"
)
IMPLEMENTATIONS = ["pure", pytest.param("native", marks=needs_native)]


class _Names:
    def __init__(self, names: dict[str, Any]) -> None:
        self.__dict__.update(names)


def twin(structure: str, implementation: str) -> Any:
    """The names of `structure` (a key of native.PURE_MODULES) in one implementation, as
    attributes: the native module, or the pure module's PURE_TWIN."""
    if implementation == "native":
        return import_native(structure)
    return _Names(importlib.import_module(PURE_MODULES[structure]).PURE_TWIN)


def backlog_twin(implementation: str) -> Any:
    """`Backlog`, `record_bytes`, `batch_bytes` of one implementation."""
    return twin("backlog", implementation)


def partition_state_class(implementation: str) -> Any:
    """The `PartitionState` class of one implementation."""
    return twin("partition_state", implementation).PartitionState


_WORK_NAMES = ("WorkItem", "Report", "GroupReport")


def records_twin(implementation: str) -> Any:
    """`Record`, `WorkItem`, `Report`, `GroupReport` of one implementation."""
    record, work = twin("record", implementation), twin("work", implementation)
    return _Names({"Record": record.Record, **{n: getattr(work, n) for n in _WORK_NAMES}})


def intake_function(implementation: str) -> Any:
    """The `intake` function of one implementation (control/intake.py)."""
    return twin("intake", implementation).intake


def completing_twin(implementation: str) -> Any:
    """`unrevoked`, `complete_offsets`, `completions` of one implementation."""
    return twin("completing", implementation)


def in_flight_twin(implementation: str) -> Any:
    """`dispatch` and `settle` of one implementation (control/in_flight.py)."""
    return twin("in_flight", implementation)


def batch_assembly_twin(implementation: str) -> Any:
    """`Batch` and `BatchAssembler` of one implementation (engines/batch_assembly.py)."""
    return twin("batch_assembly", implementation)
