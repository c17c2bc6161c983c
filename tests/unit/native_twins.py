"""Both implementations of the record-tracking structures, for tests that run against each:
the pure-Python twins and the native (Cython) ones (pyrallel_consumer/native.py).

`IMPLEMENTATIONS` parametrizes a fixture; "native" is skipped when the extensions are not built.
"""

from __future__ import annotations

from typing import Any

import pytest

import pyrallel_consumer.backlog as backlog_module
import pyrallel_consumer.control.completing as completing_module
import pyrallel_consumer.control.in_flight as in_flight_module
import pyrallel_consumer.control.intake as intake_module
import pyrallel_consumer.control.partition_state as partition_state_module
import pyrallel_consumer.engines.batch_assembly as batch_assembly_module
import pyrallel_consumer.record as record_module
import pyrallel_consumer.work as work_module
from pyrallel_consumer.native import MODULES, import_native


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


def backlog_twin(implementation: str) -> Any:
    """`Backlog`, `record_bytes`, `batch_bytes` of one implementation, as attributes."""
    if implementation == "native":
        return import_native("backlog")
    return _Names(backlog_module.PURE_TWIN)


def partition_state_class(implementation: str) -> Any:
    """The `PartitionState` class of one implementation."""
    if implementation == "native":
        return import_native("partition_state").PartitionState
    return partition_state_module.PURE_TWIN["PartitionState"]


def records_twin(implementation: str) -> Any:
    """`Record`, `WorkItem`, `Report`, `GroupReport` of one implementation, as attributes."""
    if implementation == "native":
        return import_native("work")  # the one module has all four (native.py)
    return _Names({**record_module.PURE_TWIN, **work_module.PURE_TWIN})


class _Names:
    def __init__(self, names: dict[str, Any]) -> None:
        self.__dict__.update(names)


def intake_function(implementation: str) -> Any:
    """The `intake` function of one implementation (control/intake.py)."""
    if implementation == "native":
        return import_native("intake").intake
    return intake_module.PURE_TWIN["intake"]


def completing_twin(implementation: str) -> Any:
    """`complete_offsets` and `completions` of one implementation (control/completing.py)."""
    if implementation == "native":
        return import_native("completing")
    return _Names(completing_module.PURE_TWIN)


def in_flight_twin(implementation: str) -> Any:
    """`dispatch` and `settle` of one implementation (control/in_flight.py)."""
    if implementation == "native":
        return import_native("in_flight")
    return _Names(in_flight_module.PURE_TWIN)


def batch_assembly_twin(implementation: str) -> Any:
    """`Batch` and `BatchAssembler` of one implementation (engines/batch_assembly.py)."""
    if implementation == "native":
        return import_native("batch_assembly")
    return _Names(batch_assembly_module.PURE_TWIN)
