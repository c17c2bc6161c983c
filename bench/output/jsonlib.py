"""The JSON library the bench reads and writes its results files with: orjson when it can be
imported, else the standard library's json, so that results are still written on an interpreter
orjson has no wheel for yet (a new Python release). The output is the same JSON either way:
indented by 2, UTF-8, keys in insertion order.

    JSON_LIBRARY            "orjson 3.10.7" or "json (standard library)", for the metadata
    dumps_indented(doc)     bytes; TypeError for a value JSON cannot carry, ValueError for NaN
    loads(data)             the document; json.JSONDecodeError (orjson's is a subclass) if bad

Callers pass plain values only (bench.output.results cleans NaN, paths and non-string keys
first), so neither library needs options for anything else.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

STANDARD_LIBRARY = "json (standard library)"


def _import_orjson() -> ModuleType | None:
    try:
        return importlib.import_module("orjson")
    except ImportError:  # not installed, or no build for this interpreter
        return None


_orjson = _import_orjson()
JSON_LIBRARY = STANDARD_LIBRARY if _orjson is None else f"orjson {_orjson.__version__}"


def dumps_indented(document: Any) -> bytes:
    """`document` as indented JSON bytes (no trailing newline)."""
    if _orjson is not None:
        data: bytes = _orjson.dumps(document, option=_orjson.OPT_INDENT_2)
        return data
    # allow_nan=False: orjson writes NaN as null, json would write `NaN`, which is not JSON;
    # the callers clean NaN away, so one arriving here is a bug to report, not to write.
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False).encode()


def loads(data: bytes) -> Any:
    """The JSON document in `data`."""
    if _orjson is not None:
        return _orjson.loads(data)
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:  # orjson reports bytes that are not UTF-8 as bad JSON too
        text = data.decode(errors="replace")
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", text, exc.start) from None
