"""Option parsing and validation of the benchmark runner."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from bench.cli import parse_args
from bench.output.compare import main as compare_main
from bench.output.report import main as report_main
from bench.overhead import main as overhead_main


def test_defaults_match_the_benchmark_document() -> None:
    opts = parse_args([])
    assert opts.bootstrap_servers is None
    assert opts.workload == "sleep"
    assert opts.worker_sleep_ms == 5.0
    assert opts.worker_cpu_iterations == 1000
    assert opts.worker_io_sleep_ms == 5.0
    assert opts.log_level == "WARNING"
    assert opts.profile is False
    assert opts.profile_dir == Path("bench/results/profiles")
    assert opts.profile_clock == "wall"
    assert opts.json_output is None
    assert (opts.num_messages, opts.num_keys, opts.num_partitions) == (2000, 100, 4)
    assert opts.ordering == "key"
    assert opts.modes == ["baseline", "async", "process"]
    assert opts.workloads == ["sleep"]


def test_all_workloads_run_in_the_documented_order() -> None:
    assert parse_args(["--workload", "all"]).workloads == ["sleep", "cpu", "io"]


def test_every_documented_option_is_accepted() -> None:
    opts = parse_args(
        [
            "--bootstrap-servers",
            "localhost:9092",
            "--num-messages",
            "100000",
            "--num-keys",
            "10",
            "--num-partitions",
            "8",
            "--topic-prefix",
            "p.x_y-z",
            "--timeout-sec",
            "30",
            "--skip-baseline",
            "--skip-async",
            "--skip-reset",
            "--workload",
            "io",
            "--worker-sleep-ms",
            "1",
            "--worker-cpu-iterations",
            "2000",
            "--worker-io-sleep-ms",
            "0",
            "--json-output",
            "out.json",
            "--log-level",
            "debug",
            "--profile",
            "--profile-dir",
            "profiles",
            "--profile-clock",
            "cpu",
            "--profile-top-n",
            "0",
            "--profile-threads",
            "--profile-greenlets",
            "--profile-process-workers",
            "--ordering",
            "unordered",
            "--max-in-flight",
            "50",
            "--concurrency",
            "8",
            "--workers",
            "2",
            "--worker-concurrency",
            "4",
            "--no-progress",
        ]
    )
    assert opts.modes == ["process"]
    assert opts.log_level == "DEBUG"
    assert opts.json_output == Path("out.json")
    assert opts.profile_top_n == 0 and opts.profile_process_workers
    assert opts.to_dict()["profile_dir"] == "profiles"
    # the results format records one flag per mode, as the command line spells it
    flags = {k: v for k, v in opts.to_dict().items() if k.startswith("skip_")}
    assert flags == {
        "skip_baseline": True,
        "skip_async": True,
        "skip_process": False,
        "skip_reset": True,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-messages", "0"], "--num-messages"),
        (["--num-messages", "ten"], "--num-messages"),
        (["--num-keys", "-1"], "--num-keys"),
        (["--num-partitions", "0"], "--num-partitions"),
        (["--timeout-sec", "0"], "--timeout-sec"),
        (["--timeout-sec", "nan"], "--timeout-sec"),
        (["--worker-sleep-ms", "-5"], "--worker-sleep-ms"),
        (["--worker-cpu-iterations", "0"], "--worker-cpu-iterations"),
        (["--workload", "disk"], "--workload"),
        (["--profile-clock", "gpu"], "--profile-clock"),
        (["--profile-top-n", "-1"], "--profile-top-n"),
        (["--ordering", "random"], "--ordering"),
        (["--log-level", "LOUD"], "--log-level"),
        (["--skip-baseline", "--skip-async", "--skip-process"], "nothing to run"),
        (["--topic-prefix", "bad prefix"], "--topic-prefix"),
        (["--bootstrap-servers", "localhost"], "--bootstrap-servers"),
        (["--bootstrap-servers", "host:99999"], "--bootstrap-servers"),
        (["--bootstrap-servers", "h:1", "--broker-kind", "tansu"], "--broker-kind"),
        (["--profile-threads"], "--profile-threads needs --profile"),
        (["--profile-process-workers"], "--profile-process-workers needs --profile"),
    ],
)
def test_bad_values_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_legacy_runner_forces_profile() -> None:
    opts = parse_args(["--profile-threads"], force_profile=True)
    assert opts.profile and opts.profile_threads


def test_json_output_directory_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--json-output", str(tmp_path)])
    assert "--json-output" in capsys.readouterr().err


def test_help_states_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--num-messages", "default: 2000", "--profile-process-workers", "WARNING"):
        assert text in out


def test_kafka_config_passthrough(capsys: pytest.CaptureFixture[str]) -> None:
    opts = parse_args(["--kafka-config", "fetch.wait.max.ms=5", "--kafka-config", "client.id = c"])
    assert opts.kafka_config == (("fetch.wait.max.ms", "5"), ("client.id", "c"))
    with pytest.raises(SystemExit):
        parse_args(["--kafka-config", "novalue"])
    assert "--kafka-config" in capsys.readouterr().err


def test_kafka_config_typo_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--kafka-config", "fetch.wait.max.msec=5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'fetch.wait.max.msec' is not a librdkafka setting" in err
    assert "did you mean 'fetch.wait.max.ms'" in err


def test_kafka_config_secrets_are_redacted_in_the_options_dump() -> None:
    opts = parse_args(
        [
            "--kafka-config",
            "sasl.username=alice",
            "--kafka-config",
            "sasl.password=hunter2",
            "--kafka-config",
            "sasl.mechanism=PLAIN",
            "--kafka-config",
            "security.protocol=SASL_PLAINTEXT",
        ]
    )
    dumped = opts.to_dict()
    assert "hunter2" not in repr(dumped)
    assert ["sasl.password", "[redacted]"] in dumped["kafka_config"]
    assert ["sasl.username", "alice"] in dumped["kafka_config"]


def test_metrics_port_option() -> None:
    assert parse_args([]).metrics_port is None
    assert parse_args(["--metrics-port", "9108"]).metrics_port == 9108


def test_batch_size_option() -> None:
    assert parse_args([]).batch_size is None
    assert parse_args(["--batch-size", "100", "--workload", "bulk"]).batch_size == 100
    with pytest.raises(SystemExit):
        parse_args(["--batch-size", "2000", "--max-in-flight", "1000"])


def _one_line_error(call: Callable[[], object], capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of `call`, which must exit with status 2 and print one line, no usage."""
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--num-message", "5"],  # a prefix of --num-messages: no abbreviations
            "python -m bench: error: unknown option --num-message; did you mean "
            "--num-messages? (--help lists the options)",
        ),
        (
            ["--wrkload=cpu", "--zz"],
            "python -m bench: error: unknown options --wrkload (--workload?), --zz "
            "(--help lists the options)",
        ),
        (
            ["--num-keys", "1", "--rate", "-5"],  # a negative number is a (bad) value
            "python -m bench: error: argument --rate: must be a finite number >= 0, got -5",
        ),
    ],
)
def test_a_misspelt_option_gets_one_line_with_the_closest_option(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _one_line_error(lambda: parse_args(argv, prog="python -m bench"), capsys) == line


def test_validation_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error(lambda: parse_args(["--profile-threads"]), capsys)
    assert err.endswith("error: --profile-threads needs --profile")


def test_a_misspelt_subcommand_gets_the_closest_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["compar", "a.json", "b.json"]) == 2
    assert capsys.readouterr().err == (
        "python -m bench: error: unknown subcommand compar; did you mean compare? "
        "(--help lists the options)\n"
    )


@pytest.mark.parametrize(
    ("main", "argv", "line"),
    [
        (
            compare_main,
            ["a.json", "b.json", "--wdie"],
            "python -m bench compare: error: unknown option --wdie; did you mean --wide? "
            "(--help lists the options)",
        ),
        (
            report_main,
            ["a.json", "--ou", "charts"],  # reported before the missing --out it hides
            "python -m bench report: error: unknown option --ou; did you mean --out? "
            "(--help lists the options)",
        ),
        (
            overhead_main,
            ["--num-message", "5"],
            "python -m bench.overhead: error: unknown option --num-message; did you mean "
            "--num-messages? (--help lists the options)",
        ),
        (
            overhead_main,
            ["--paths", "baseline,asyncc/unordered"],
            "python -m bench.overhead: error: argument --paths: 'asyncc/unordered': expected "
            "an engine among baseline, async, process",
        ),
    ],
)
def test_the_other_commands_report_typos_the_same_way(
    main: Callable[[list[str]], int],
    argv: list[str],
    line: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _one_line_error(lambda: main(argv), capsys) == line


def test_the_readmes_say_first_how_the_documents_command_names_map_here() -> None:
    root = Path(__file__).resolve().parents[2]
    for readme in ("README.md", "bench/README.md"):
        head = "\n".join((root / readme).read_text().splitlines()[:20])
        assert "python -m benchmarks.run_parallel_benchmark" in head, readme
        assert "python -m bench.run_parallel_benchmark" in head, readme
        assert "`bench/results/`" in head, readme
    assert importlib.util.find_spec("bench.run_parallel_benchmark") is not None
