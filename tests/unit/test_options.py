"""The options live in one place (pyrallel_consumer/options.py): ParallelConsumer's signature,
build_config and README.md's option table are checked against it."""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path
from typing import get_args

import pytest

from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.config import build_config
from pyrallel_consumer.engines.registry import ENGINE_NAMES
from pyrallel_consumer.options import DEFAULTS, EngineName, Options, option_names

README = Path(__file__).resolve().parents[2] / "README.md"
KAFKA = {"bootstrap.servers": "localhost:9092", "group.id": "g"}
# ParallelConsumer's arguments that are not options (the required ones and the callbacks).
OWN = ("kafka_config", "topics", "handler", "on_complete", "on_assign", "on_revoke")
OWN += ("worker_init",)
OWN += ("worker_exit", "metrics")


def _parameters() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(ParallelConsumer.__init__).parameters)


def test_every_option_is_a_keyword_only_parameter_with_the_dataclass_type_and_default() -> None:
    parameters = _parameters()
    assert [name for name in parameters if name not in (*OWN, "self")] == list(option_names())
    for field in fields(Options):
        parameter = parameters[field.name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, field.name
        assert parameter.annotation == field.type, field.name  # both strings (annotations)
        assert parameter.default == getattr(DEFAULTS, field.name), field.name


def test_help_shows_the_options_with_their_values() -> None:
    shown = str(inspect.signature(ParallelConsumer))
    assert "backlog_size: 'int' = 50000" in shown
    assert "engine: 'EngineName' = 'async'" in shown


def test_the_engine_names_type_lists_the_registry() -> None:
    assert get_args(EngineName) == ENGINE_NAMES


def test_build_config_takes_the_same_options() -> None:
    config = build_config(
        KAFKA, topics=["t"], engine="process", max_in_flight=10, batch_size=5, codec="msgpack"
    )
    assert (config.max_in_flight, config.batch_size, config.codec) == (10, 5, "msgpack")
    with pytest.raises(TypeError, match="unexpected option 'max_inflight'; did you mean"):
        build_config(KAFKA, topics=["t"], max_inflight=10)


def test_a_misspelt_option_names_the_closest_once() -> None:
    with pytest.raises(TypeError) as info:
        ParallelConsumer(KAFKA, topics=["t"], handler=print, max_inflight=10)  # type: ignore[call-arg]
    message = str(info.value)
    assert "did you mean 'max_in_flight'?" in message
    listed = message.split("(options: ")[1].split(";")[0].split(", ")
    assert len(listed) == len(set(listed))


def _readme_option_names() -> list[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("| option | default | meaning |", 1)[1].split("\n\n", 1)[0]
    names = []
    for row in table.splitlines()[1:]:
        first_cell = row.split("|")[1]
        names += re.findall(r"`([a-z_]+)`", first_cell)
    return names


def test_the_readme_table_documents_every_option_and_nothing_else() -> None:
    documented = _readme_option_names()
    expected = [*option_names(), *(name for name in OWN if name not in ("kafka_config",))]
    expected.remove("topics")
    expected.remove("handler")  # both in the quick-start example instead
    assert sorted(documented) == sorted(expected)


def test_a_type_checker_sees_the_options(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    user_code = tmp_path / "user_code.py"
    user_code.write_text(
        "from pyrallel_consumer import ParallelConsumer\n"
        "def handle(record: object) -> None: ...\n"
        "ParallelConsumer({}, topics=['t'], handler=handle, max_in_flight=10)\n"
        "ParallelConsumer({}, topics=['t'], handler=handle, max_inflight=10)\n"
        "ParallelConsumer({}, topics=['t'], handler=handle, max_in_flight='10')\n"
        "ParallelConsumer({}, topics=['t'], handler=handle, ordering='by_key')\n",
        encoding="utf-8",
    )
    out, _, status = mypy_api.run(
        ["--no-incremental", "--follow-imports=silent", "--ignore-missing-imports", str(user_code)]
    )
    assert status == 1
    flagged = sorted(int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line)
    assert flagged == [4, 5, 6], out


def test_the_choices_types_are_exported_and_match_what_the_library_accepts() -> None:
    """Users type values read from their own settings with these; each Literal lists exactly
    the values the checks accept (the engine names come from the registry)."""
    import pyrallel_consumer
    from pyrallel_consumer.config import CODECS, ON_FAILURE, ORDERINGS
    from pyrallel_consumer.engines.registry import ENGINE_NAMES

    assert get_args(pyrallel_consumer.EngineName) == ENGINE_NAMES
    assert get_args(pyrallel_consumer.Ordering) == ORDERINGS
    assert get_args(pyrallel_consumer.OnFailure) == ON_FAILURE
    assert get_args(pyrallel_consumer.CodecName) == CODECS
