"""The Python interpreter the bench runs on, as the results file records it.

    interpreter_metadata() -> {"version": "3.14.0", "implementation": "CPython",
                               "free_threaded": False, "gil_enabled": True}

`free_threaded`: the build can run without the GIL (a `3.14t` build: Py_GIL_DISABLED set when
it was compiled). `gil_enabled`: whether the GIL is on in this process now; a free-threaded
build turns it back on when it imports an extension module not declared safe without it (or
with PYTHON_GIL=1), so the two differ. On a default build the GIL is always on.

Which threads run Python code at once follows from `gil_enabled`: with the GIL, one at a time
(the async engine's thread pool runs pure-Python handlers on one core); without it, on every
core. Worker processes (the process engine) each have their own interpreter either way.
"""

from __future__ import annotations

import platform
import sys
import sysconfig
from collections.abc import Mapping
from typing import Any


def free_threaded_build() -> bool:
    """Whether this interpreter was built free-threaded (Py_GIL_DISABLED; Python 3.13+)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is enabled in this process now (always True before Python 3.13, whose
    sys._is_gil_enabled() is the only way to ask)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def interpreter_metadata() -> dict[str, Any]:
    """The interpreter's identity (plain JSON values; shape in the module docstring)."""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "free_threaded": free_threaded_build(),
        "gil_enabled": gil_enabled(),
    }


def describe_interpreter(metadata: Mapping[str, Any]) -> str:
    """The interpreter of a results file's `metadata`, in one phrase for tables and summaries:
    `CPython 3.11.7` on a default build, `CPython 3.14.0t, GIL off` (or `GIL on`) on a
    free-threaded one (the `t` of its `python3.14t` command). A file from before the
    interpreter was recorded gives its `python` line (`CPython 3.11.7`), or `?` without one."""
    recorded = metadata.get("interpreter")
    if not isinstance(recorded, Mapping):
        return str(metadata.get("python", "?"))
    name = f"{recorded.get('implementation', '?')} {recorded.get('version', '?')}"
    if not recorded.get("free_threaded"):
        return name
    return f"{name}t, GIL {'on' if recorded.get('gil_enabled') else 'off'}"
