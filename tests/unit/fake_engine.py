"""A container engine without an engine: the slice of the docker SDK's client that the driver
(bench.containers) uses, recording what it is asked to create.

Each mode's container "runs the bench" by leaving a clean results file in its /results whose
metadata carries the run id and the cpu service time it was given (as the bench does with
PYRALLEL_RUN_ID and --cpu-service-ms: tests/integration/test_bench_container_contract.py checks
that side against a real broker).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class FakeImage:
    id: str
    labels: dict[str, str] = field(default_factory=dict)


class FakeContainer:
    def __init__(self, engine: FakeEngine, image: str, options: dict[str, Any]) -> None:
        self.engine, self.image, self.options = engine, image, options
        self.name = str(options.get("name", "container"))
        self.attrs: dict[str, Any] = {"State": {"Status": "created"}}
        self.removed = False

    @property
    def is_calibration(self) -> bool:
        return "entrypoint" in self.options

    def start(self) -> None:
        self.attrs = {"State": {"Status": "running"}}

    def reload(self) -> None:
        return None

    def exec_run(self, command: list[str]) -> tuple[int, bytes]:
        return 0, b""  # the broker answers its probe at once

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.engine.calibration_status if self.is_calibration else 0}

    def logs(self, stream: bool = False, follow: bool = False, tail: int = 0) -> Any:
        if self.is_calibration:
            return self.engine.calibration_output
        return iter([b"bench output\n"]) if stream else b""

    def get_archive(self, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        environment = self.options["environment"]
        command = list(self.options["command"])
        mode = self.image.split("-")[-1].split(":")[0]  # pyrallel/bench-<mode>:<tag>
        given = (
            command[command.index("--cpu-service-ms") + 1]
            if "--cpu-service-ms" in command
            else None
        )
        run = {
            "run_type": mode,
            "workload": "cpu",
            "messages_expected": 10,
            "messages_processed": 10,
            "missing": 0,
            "ordering_violations": 0,
            "complete": True,
        }
        metadata = {"run_id": environment["PYRALLEL_RUN_ID"], "complete": True}
        metadata["cpu_service_ms"] = float(given) if given else None
        doc = orjson.dumps({"metadata": metadata, "results": [run]})
        name = f"results/{environment['PYRALLEL_RUN_ID']}-{mode}.json"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(doc)
            tar.addfile(info, io.BytesIO(doc))
        return iter([buffer.getvalue()]), {}

    def stop(self, timeout: int = 10) -> None:
        return None

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeContainers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def create(self, image: str, **options: Any) -> FakeContainer:
        container = FakeContainer(self.engine, image, options)
        self.engine.created.append(container)
        return container


class FakeImages:
    def get(self, name: str) -> FakeImage:
        return FakeImage(id=f"sha256:{name}", labels={"io.pyrallel.kafka.version": "4.1.1"})


class FakeApi:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def build(self, **options: Any) -> Iterator[dict[str, Any]]:
        self.engine.builds.append(options)
        if isinstance(self.engine.build_failure, Exception):
            raise self.engine.build_failure
        return iter(self.engine.build_failure or [{"stream": "Successfully built\n"}])


class FakeEngine:
    """The client: `containers`, `images`, `api`, `version()` and `info()`; `created` lists
    the containers in order, `builds` the build requests."""

    def __init__(self, cpus: int = 2) -> None:
        self.cpus = cpus
        self.created: list[FakeContainer] = []
        self.builds: list[dict[str, Any]] = []
        self.build_failure: Exception | list[dict[str, Any]] | None = None
        self.calibration_output = b"0.123456\n"
        self.calibration_status = 0
        self.containers = FakeContainers(self)
        self.images = FakeImages()
        self.api = FakeApi(self)

    def version(self) -> dict[str, Any]:
        return {"Version": "27.0", "Components": [{"Name": "Engine"}]}

    def info(self) -> dict[str, Any]:
        return {"NCPU": self.cpus, "MemTotal": 4 << 30}
