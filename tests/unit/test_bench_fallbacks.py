"""The bench without its optional libraries: results still written without orjson (the standard
library's json, said in the metadata); --profile refused in one line without yappi.

Each case runs in a fresh interpreter where the library cannot be imported (`sys.modules[name]
= None` before anything imports it, what an interpreter without a build of it does), so the
bench's real import-time choices are what is tested.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench_samples import sample_result

from bench.output.environment import environment_metadata
from bench.output.jsonlib import STANDARD_LIBRARY
from bench.output.results import write_results

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent

# Writes argv[1] as the bench does after a run, then reads it back and reports what it read.
WRITE_WITHOUT_ORJSON = """
import json, math, sys
sys.modules["orjson"] = None
sys.path.insert(0, sys.argv[2])
from test_bench_samples import sample_result
from bench.output.environment import environment_metadata
from bench.output.results import load_results, write_results
path = write_results(
    __import__("pathlib").Path(sys.argv[1]),
    {**environment_metadata(), "options": {"é": 1}},
    [sample_result(), sample_result(efficiency=math.nan, complete=False)],
)
doc = load_results(path)
print(json.dumps([doc["metadata"]["json_library"], len(doc["results"])]))
"""

READ_BAD_FILES_WITHOUT_ORJSON = """
import sys
sys.modules["orjson"] = None
from pathlib import Path
from bench.output.results import load_results
for name in sys.argv[1:]:
    try:
        load_results(Path(name))
    except ValueError as exc:
        print(exc)
"""


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_results_are_written_with_the_standard_library_without_orjson(tmp_path: Path) -> None:
    out = tmp_path / "std.json"
    done = _run(WRITE_WITHOUT_ORJSON, str(out), str(TESTS))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [STANDARD_LIBRARY, 2]
    written = json.loads(out.read_bytes())  # the strict reader: no NaN, UTF-8
    assert written["metadata"]["json_library"] == STANDARD_LIBRARY
    assert written["metadata"]["options"] == {"é": 1}
    assert written["results"][1]["efficiency"] is None  # NaN -> null, as with orjson


def test_both_libraries_write_the_same_document(tmp_path: Path) -> None:
    """Bar the metadata that says who wrote it and when (runs where orjson can be imported)."""
    pytest.importorskip("orjson")
    done = _run(WRITE_WITHOUT_ORJSON, str(tmp_path / "std.json"), str(TESTS))
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "std.json").read_bytes())
    with_orjson = write_results(
        tmp_path / "orjson.json",
        {**environment_metadata(), "options": {"é": 1}},
        [sample_result(), sample_result(efficiency=math.nan, complete=False)],
    )
    reference = json.loads(with_orjson.read_bytes())
    assert reference["metadata"]["json_library"].startswith("orjson ")
    assert written["results"] == reference["results"]
    skip = {"json_library", "utc_time"}
    assert {k: v for k, v in written["metadata"].items() if k not in skip} == {
        k: v for k, v in reference["metadata"].items() if k not in skip
    }


def test_bad_files_are_reported_the_same_without_orjson(tmp_path: Path) -> None:
    truncated, binary = tmp_path / "truncated.json", tmp_path / "binary.json"
    truncated.write_text('{"results": [')
    binary.write_bytes(b'{"results": "\xff\xfe"}')
    done = _run(READ_BAD_FILES_WITHOUT_ORJSON, str(truncated), str(binary))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("not valid JSON" in line for line in lines), lines


def _bench_without_yappi(*argv: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys\n"
        "sys.modules['yappi'] = None\n"
        "from bench.__main__ import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return _run(script)


def test_profile_is_refused_in_one_line_without_yappi() -> None:
    done = _bench_without_yappi("--profile", "--bootstrap-servers", "127.0.0.1:1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("python -m bench: error: --profile needs yappi")
    assert "pip install yappi" in lines[0]


def test_the_bench_runs_without_yappi_when_not_profiling() -> None:
    script = (
        "import sys\n"
        "sys.modules['yappi'] = None\n"
        "from bench.run_parallel_benchmark import parse_args\n"
        "print(parse_args([]).profile)\n"
    )
    done = _run(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
