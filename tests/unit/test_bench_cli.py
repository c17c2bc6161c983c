"""Option parsing and validation of the benchmark runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import parse_args


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
