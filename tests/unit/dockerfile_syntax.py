"""Dockerfile reading for the image tests: instructions, exec-form arguments, stages."""

from __future__ import annotations

import json
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2] / "images"


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def exec_form(instructions: list[tuple[str, str]], keyword: str) -> list[str] | None:
    """The last KEYWORD's JSON (exec form) arguments, as Docker uses the last one."""
    values = [rest for kw, rest in instructions if kw == keyword]
    if not values:
        return None
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{keyword} must use the JSON exec form: {values[-1]}"
    return parsed


def all_dockerfiles() -> list[Path]:
    """The images' Dockerfiles and the local Kafka base's (images/local)."""
    return sorted([*IMAGES.glob("Dockerfile*"), *IMAGES.glob("local/Dockerfile*")])


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each FROM stage (ARGs before the first FROM are left out)."""
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found
