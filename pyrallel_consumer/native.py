"""Native (Cython) or pure-Python record-tracking structures: which ones the package uses.

The per-record structures (the control thread's, and the lane runners' lane table) have native
twins, all in one extension module built from ext/record_path.pyx by `make build-ext` (one
module so that they call each other in C), with the same behaviour:

    structure          pure-Python module (PURE_MODULES)
    "backlog"          pyrallel_consumer.backlog
    "partition_state"  pyrallel_consumer.control.partition_state
    "record"           pyrallel_consumer.record
    "work"             pyrallel_consumer.work
    "intake"           pyrallel_consumer.control.intake
    "completing"       pyrallel_consumer.control.completing
    "in_flight"        pyrallel_consumer.control.in_flight
    "batch_assembly"   pyrallel_consumer.engines.batch_assembly
    "lanes"            pyrallel_consumer.engines.lane_table

Each pure module calls `bind_twin` once, at its end, which binds the native names when
`native_twin` gives the module (`Backlog`, `record_bytes`, `batch_bytes`; `PartitionState`;
`Record`; `WorkItem`, `Report`, `GroupReport`; `intake`; `unrevoked`, `complete_offsets`,
`completions`; `dispatch`, `settle`; `Batch`, `BatchAssembler`; `Lanes`), so importers see one
set of names. A leaf: it imports only the standard library, so the shared-vocabulary modules
(backlog.py, record.py, work.py) may import it.

``PYRALLEL_NATIVE`` decides, read when each module is first imported: ``auto`` (default: native
when built), ``1``/``native`` (ImportError when not built) or ``0``/``pure`` (the pure-Python
twins). ``IN_USE`` maps each structure to "native" or "pure" as it was bound.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, MutableMapping
from types import ModuleType
from typing import Any

__all__ = [
    "ENV_VAR",
    "IN_USE",
    "MODULES",
    "NATIVE_MODULE",
    "PURE_MODULES",
    "bind_twin",
    "implementation",
    "import_native",
    "native_twin",
]

ENV_VAR = "PYRALLEL_NATIVE"
# Accepted spellings (lower case, stripped) -> the choice they stand for.
_CHOICES = {
    "": "auto",
    "auto": "auto",
    "1": "native",
    "native": "native",
    "0": "pure",
    "pure": "pure",
}

PURE_MODULES = {
    "backlog": "pyrallel_consumer.backlog",
    "partition_state": "pyrallel_consumer.control.partition_state",
    "record": "pyrallel_consumer.record",
    "work": "pyrallel_consumer.work",
    "intake": "pyrallel_consumer.control.intake",
    "completing": "pyrallel_consumer.control.completing",
    "in_flight": "pyrallel_consumer.control.in_flight",
    "batch_assembly": "pyrallel_consumer.engines.batch_assembly",
    "lanes": "pyrallel_consumer.engines.lane_table",
}
# Every structure's native twin is in this one module (ext/record_path.pyx).
NATIVE_MODULE = "pyrallel_consumer._record_path"
MODULES = dict.fromkeys(PURE_MODULES, NATIVE_MODULE)

# Structure -> "native" | "pure", as bound by `native_twin` (written on import, then only read).
IN_USE: dict[str, str] = {}


def import_native(structure: str) -> ModuleType:
    """The native module of `structure` (a key of MODULES).

    Raises ImportError, saying how to build it, when it is not built or was built from sources
    that lacked it (its STRUCTURES); KeyError for an unknown structure.
    """
    name = MODULES[structure]
    try:
        module = importlib.import_module(name)  # consults sys.modules (tests block it there)
    except ImportError as exc:
        raise ImportError(
            f"the native {structure} ({name}) is not built: run `make build-ext` "
            f"(python setup.py build_ext --inplace), or set {ENV_VAR}=0"
        ) from exc
    if structure not in getattr(module, "STRUCTURES", ()):
        raise ImportError(
            f"the native {structure} is not in {name}, which was built from older sources: "
            f"run `make build-ext` (python setup.py build_ext --inplace), or set {ENV_VAR}=0"
        )
    return module


def _choice() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    choice = _CHOICES.get(value)
    if choice is None:
        raise ValueError(f"{ENV_VAR} must be one of auto, native (1) or pure (0), got {value!r}")
    return choice


def native_twin(structure: str) -> ModuleType | None:
    """The native module to bind for `structure`, or None to keep the pure-Python twin, as
    ``PYRALLEL_NATIVE`` says; records the answer in IN_USE.

    Raises ValueError for an unknown ``PYRALLEL_NATIVE``, ImportError when it is ``native``
    and the module is not built.
    """
    choice = _choice()
    module: ModuleType | None = None
    if choice == "native":
        module = import_native(structure)
    elif choice == "auto":
        try:
            module = import_native(structure)
        except ImportError:
            module = None
    IN_USE[structure] = "pure" if module is None else "native"
    return module


def bind_twin(
    namespace: MutableMapping[str, Any], structure: str, names: Iterable[str]
) -> dict[str, Any]:
    """Rebind `names` in `namespace` (a pure module's globals()) to their native twins when
    `native_twin(structure)` gives the module. Returns the pure definitions, by name: the
    module's PURE_TWIN, which keeps them reachable for the tests that run against both.

    Raises what `native_twin` raises."""
    pure = {name: namespace[name] for name in names}
    module = native_twin(structure)
    if module is not None:
        namespace.update((name, getattr(module, name)) for name in pure)
    return pure


def implementation() -> str:
    """Which structures the control plane runs with: "native", "pure", or "mixed" when only
    some are native. Imports them first: each binds its structure on import."""
    for module in PURE_MODULES.values():
        importlib.import_module(module)
    kinds = set(IN_USE.values())
    return kinds.pop() if len(kinds) == 1 else "mixed"
