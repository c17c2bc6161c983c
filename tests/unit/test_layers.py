"""Layers only point down: checked on the import statements of the library's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pyrallel_consumer

PACKAGE = Path(pyrallel_consumer.__file__).parent
# Engine modules proper; engines/base, lanes, attempts and registry are shared helpers.
ENGINE_MODULES = {"asyncio_engine", "baseline", "process"}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_engines_never_import_the_control_plane_nor_each_other() -> None:
    for path in (PACKAGE / "engines").glob("*.py"):
        imported = imports_of(path)
        assert not any(name.startswith("pyrallel_consumer.control") for name in imported), path
        others = {f"pyrallel_consumer.engines.{m}" for m in ENGINE_MODULES - {path.stem}}
        if path.stem == "process_worker":  # the process engine's own child side
            others.discard("pyrallel_consumer.engines.process")
        assert not imported & others, path


def test_shared_vocabulary_modules_are_leaves() -> None:
    for name in ("work.py", "backlog.py", "record.py", "native.py", "output.py"):
        imported = imports_of(PACKAGE / name)
        inner = {m for m in imported if m.startswith("pyrallel_consumer")}
        assert inner <= {
            "pyrallel_consumer.record",
            "pyrallel_consumer.record.Record",
            "pyrallel_consumer.work",
            "pyrallel_consumer.work.Lane",
            "pyrallel_consumer.work.WorkItem",
            # output.py (the handler's outputs) imports only the standard library
            "pyrallel_consumer.output",
            "pyrallel_consumer.output.Output",
            # native.py picks the native twins; it imports only the standard library
            "pyrallel_consumer.native",
            "pyrallel_consumer.native.bind_twin",
        }, (name, inner)


def test_nothing_in_the_library_imports_the_bench() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert not any(m == "bench" or m.startswith("bench.") for m in imports_of(path)), path
