"""A broker a test can restart: Apache Kafka of its own, with a persistent data dir, stopped
and started again on the same port (the `own_kafka` fixture of conftest.py), and the
faults_support helpers' view of it (`Broker`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.broker import KIND_KAFKA, start_broker
from bench.broker.kafka import start_kafka
from bench.broker.launch import DEFAULT_READY_TIMEOUT_S
from bench.broker.supervise import BrokerHandle, wait_until_ready


@dataclass(frozen=True)
class Broker:
    """The faults_support helpers' view of a broker."""

    bootstrap_servers: str

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap_servers, **overrides}

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            **overrides,
        }


class RestartableKafka:
    """A Kafka broker of this test alone, storing its data in `data_dir`; `restart` stops it
    and starts it again on the same port with the same data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.handle: BrokerHandle = start_broker(KIND_KAFKA, data_dir=data_dir)
        self.bootstrap_servers = self.handle.bootstrap_servers

    def restart(self) -> None:
        port = int(self.bootstrap_servers.rsplit(":", 1)[1])
        self.handle.stop()
        # Not start_broker: its free-port check fails while the old connections are in
        # TIME_WAIT, whereas Kafka binds with SO_REUSEADDR.
        self.handle = start_kafka(port, self.data_dir)
        wait_until_ready(self.handle, DEFAULT_READY_TIMEOUT_S)

    def stop(self) -> None:
        self.handle.stop()
