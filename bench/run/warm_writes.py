"""Warm a freshly started embedded broker for the library's own writers (--outputs,
--exactly-once) before the first run, as floor.warm_up_broker does for plain produce and fetch.

Why: the library writes outputs with an idempotent producer, and exactly once with a
transactional one. On a broker that never served either, the first such producer waits for its
producer id (librdkafka logs "Failed to acquire idempotence PID ... Coordinator load in
progress: retrying") and the first transactional one for the transaction coordinator, whose
log topic is created on that first use. Every record of the first measured run waited behind
that: sleep 5 ms / 100 keys / 20,000 records with --outputs measured 0.80 of the run without
outputs as the first run on a fresh broker, and 0.92-0.95 in the runs after it (bench/README.md,
"Consume, transform, produce").

Here an idempotent producer, and for --exactly-once a transactional one committing one
transaction, each writes WARM_UP_WRITES records to a throwaway topic first, and the time they
took goes into the results' metadata.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import KafkaException, Producer

from bench.run import topics
from bench.run.cluster import client_config

WARM_UP_WRITES = 1_000
_TIMEOUT_S = 60.0


def warm_up_writes(bootstrap_servers: str, transactional: bool) -> dict[str, Any]:
    """Write WARM_UP_WRITES records with an idempotent producer (and, when `transactional`,
    one transaction of them with a transactional producer); returns the seconds each took, or
    the error that stopped it (a cold broker is slower, not wrong: the runs go on)."""
    kind = "idempotent and transactional producers" if transactional else "idempotent producer"
    print(f"warming up the broker for the {kind} of the outputs", flush=True)
    topic = f"pyrallel-bench-warm-writes-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {"records": WARM_UP_WRITES}
    try:
        topics.reset_topic(bootstrap_servers, topic, 1, _TIMEOUT_S, delete_first=False)
        result["idempotent_s"] = _write(bootstrap_servers, topic, None)
        if transactional:
            result["transactional_s"] = _write(bootstrap_servers, topic, f"{topic}-tx")
    except (KafkaException, RuntimeError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    taken = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in result.items() if k.endswith("_s"))
    print(f"   {taken}" + (f" ({result['error']})" if "error" in result else ""), flush=True)
    return result


def _write(bootstrap_servers: str, topic: str, transactional_id: str | None) -> float:
    """Seconds to write WARM_UP_WRITES records (in one transaction with `transactional_id`)
    and have every one acknowledged. Raises RuntimeError when some were not."""
    settings: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}
    if transactional_id is not None:
        settings["transactional.id"] = transactional_id
    started = time.monotonic()
    producer = Producer(client_config(bootstrap_servers, **settings))
    if transactional_id is not None:
        producer.init_transactions(_TIMEOUT_S)
        producer.begin_transaction()
    for index in range(WARM_UP_WRITES):
        producer.produce(topic, b"%d" % index)
    if transactional_id is not None:
        producer.commit_transaction(_TIMEOUT_S)
    left = producer.flush(_TIMEOUT_S)
    if left:
        raise RuntimeError(f"{left} of {WARM_UP_WRITES} warm-up writes not acknowledged")
    return time.monotonic() - started
