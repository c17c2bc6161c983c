"""ParallelConsumer: the public entry point. Validates options, picks the engine, runs the loop.

Threads: the thread that calls `run` becomes the control thread (`run_async` runs it on a thread
of the event loop's executor); `stop` and `stats` are safe from any thread, `stop` from a signal
handler too. Which thread owns what: README "Concurrency model".
"""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, cast

from pyrallel_consumer.config import ConsumerConfig, check_option_names, config_from
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.control.rebalance import OnAssign, OnRevoke
from pyrallel_consumer.control.reports import OnComplete
from pyrallel_consumer.control.run_end import RunEnd
from pyrallel_consumer.control.stats import Stats
from pyrallel_consumer.engines.base import BatchHandler, Engine, Handler
from pyrallel_consumer.engines.batching import BatchingEngine
from pyrallel_consumer.engines.registry import engine_spec
from pyrallel_consumer.handler_check import validate_handler
from pyrallel_consumer.options import DEFAULTS as D
from pyrallel_consumer.options import (
    CodecName,
    EngineName,
    OnFailure,
    Options,
    Ordering,
    option_names,
)

if TYPE_CHECKING:  # the metrics module needs the optional prometheus-client
    from pyrallel_consumer.metrics import ConsumerMetrics

# Engines that call the handler in this process, where its time can be observed.
_TIMED_ENGINES = ("baseline", "async")


P = ParamSpec("P")


def _naming_the_closest_option(init: Callable[P, None]) -> Callable[P, None]:
    """`init`, with a misspelt keyword refused before Python's own TypeError, so that the
    message names the closest option on every Python version (3.13 added a hint of its own).
    The signature stays `init`'s, for help(), IDEs and type checkers."""

    @functools.wraps(init)
    def checked(*args: P.args, **kwargs: P.kwargs) -> None:
        check_option_names(kwargs, _OWN_ARGUMENTS)
        init(*args, **kwargs)

    return checked


class ParallelConsumer:
    """Consume `topics` and call `handler(record)` concurrently, keeping `ordering`; with
    `batch_size=N`, `handler(records)` with a list of up to N records per call.

    Offsets are committed only up to the lowest incomplete record of each partition (at least
    once); completed records above it travel in the commit metadata, so a restart redoes only
    what was in flight. See README for every option.
    """

    @_naming_the_closest_option
    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        *,
        topics: Sequence[str],
        handler: Handler | BatchHandler,
        on_complete: OnComplete | None = None,
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
        worker_init: Callable[[], None] | None = None,
        worker_exit: Callable[[], None] | None = None,
        metrics: ConsumerMetrics | bool = False,
        # The options (options.py holds their types and defaults; README.md's table says
        # what each does). Keep this list in Options' order: a unit test compares them.
        engine: EngineName = D.engine,
        ordering: Ordering = D.ordering,
        max_in_flight: int | None = D.max_in_flight,
        max_in_flight_per_lane: int | None = D.max_in_flight_per_lane,
        backlog_size: int = D.backlog_size,
        backlog_max_bytes: int = D.backlog_max_bytes,
        concurrency: int | None = D.concurrency,
        workers: int | None = D.workers,
        worker_concurrency: int | None = D.worker_concurrency,
        ipc_batch_size: int = D.ipc_batch_size,
        ipc_batch_max_wait_s: float = D.ipc_batch_max_wait_s,
        batch_size: int | None = D.batch_size,
        batch_max_wait_s: float = D.batch_max_wait_s,
        retries: int = D.retries,
        retry_backoff_s: float = D.retry_backoff_s,
        retry_backoff_max_s: float = D.retry_backoff_max_s,
        on_failure: OnFailure | None = D.on_failure,
        dlq_topic: str | None = D.dlq_topic,
        dlq_producer_config: Mapping[str, Any] | None = D.dlq_producer_config,
        commit_interval_s: float = D.commit_interval_s,
        drain_timeout_s: float = D.drain_timeout_s,
        revoke_grace_s: float = D.revoke_grace_s,
        poll_batch_size: int = D.poll_batch_size,
        codec: CodecName | None = D.codec,
        tracing: bool = D.tracing,
        outputs: bool = D.outputs,
        output_producer_config: Mapping[str, Any] | None = D.output_producer_config,
        transactional_id: str | None = D.transactional_id,
    ) -> None:
        given = locals()  # the options by name, before anything else is bound here
        options = Options(**{name: given[name] for name in option_names()})
        self.config = config_from(kafka_config, topics, options)
        validate_handler(handler, self.config.engine, self.config.batch_size)
        for name, hook in (("worker_init", worker_init), ("worker_exit", worker_exit)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be a callable or None, got {type(hook).__name__}")
        self.metrics = _metrics(metrics)
        loop_options: dict[str, Any] = {}
        if self.config.tracing:
            # A span per handler call, in whatever thread, task or worker process runs it.
            from pyrallel_consumer.tracing import traced_handler  # the optional extra

            handler = traced_handler(handler, self.config)
        if self.metrics is not None:
            if self.config.engine in _TIMED_ENGINES:
                # In batch mode one observation per call, of a whole batch.
                handler = self.metrics.timed_handler(cast(Handler, handler))
            loop_options["client_factory"] = self.metrics.client_factory
            self.metrics.attach(self.stats)
        # A batch handler runs on the same engines: they pass their argument on untouched.
        chosen = engine_spec(self.config.engine).create(
            cast(Handler, handler), self.config, worker_init, worker_exit
        )
        # Batch mode wraps whichever engine was chosen (engines/batching.py).
        used: Engine = (
            chosen if self.config.batch_size is None else BatchingEngine(chosen, self.config)
        )
        self._loop = ControlLoop(
            self.config, used, on_complete, on_assign, on_revoke, **loop_options
        )
        self._started = False

    def run(
        self,
        max_records: int | None = None,
        timeout: float | None = None,
        *,
        until_end: bool = False,
        idle_timeout: float | None = None,
    ) -> int:
        """Consume until `max_records` records completed, `timeout` seconds passed, stop() was
        called or SIGINT/SIGTERM arrived, or, for a batch job: with `until_end`, every assigned
        partition completed up to the end offset it had when assigned (its last stable offset
        under read_committed); with `idle_timeout`, no record arrived and none was in flight
        for that many seconds (the group join counts). Then the records not started are
        cancelled, the running ones finish (within drain_timeout_s), and it commits and
        closes. At most `max_records` records are handed to the handler. Returns the number
        of records completed.

        Raises the first failure of the run, once the consumer closed, as a PyrallelError
        (errors.py): ProcessingError (a record failed with on_failure='stop'), HandlerExit,
        DeadLetterError, CallbackError, EngineError/WorkerError, KafkaFatalError (the run
        stopped at once, committing nothing more), CommitError or KafkaError. ValueError for
        a bad argument, RuntimeError when called twice.
        """
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be >= 1 or None, got {max_records}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0 seconds or None, got {idle_timeout}")
        if self._started:
            raise RuntimeError("a ParallelConsumer runs once; create a new one to run again")
        self._started = True
        end = (
            RunEnd(until_end, idle_timeout, self._loop.clock, _starts_at_end(self.config))
            if until_end or idle_timeout
            else None
        )
        restore = self._install_signal_handlers()
        try:
            return self._loop.run(max_records, timeout, end)
        finally:
            restore()

    async def run_async(
        self,
        max_records: int | None = None,
        timeout: float | None = None,
        *,
        until_end: bool = False,
        idle_timeout: float | None = None,
    ) -> int:
        """`run` on a worker thread, awaitable from an event loop; cancelling it stops the
        consumer cleanly."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            None,
            lambda: self.run(max_records, timeout, until_end=until_end, idle_timeout=idle_timeout),
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stop()
            await future
            raise

    def stop(self) -> None:
        """Ask the loop to stop; safe from any thread or a signal handler. Called again while
        the run drains (a second Ctrl-C), it stops waiting for the records still running:
        they are not committed, and whoever consumes their partitions next redoes them."""
        self._loop.request_stop(repeat_hurries=True)

    def stats(self) -> Stats:
        """In-flight, completed, committed offsets, lag per partition (keyed by
        `TopicPartition`), retries, dead-lettered, paused partitions and engine facts; in batch
        mode also `batches` (batches, records, calls, splits, split_calls). The shape is
        `Stats` (control/stats.py; `stats_json` gives the JSON form). A consistent snapshot the
        control thread publishes (at most 0.1 s old while running), the caller's own copy. Safe
        from any thread, before run() (zeros, no partitions), during and after it (the final
        state)."""
        return self._loop.stats()

    def __enter__(self) -> ParallelConsumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


# ParallelConsumer's own keyword arguments beside the options: a misspelt one is matched
# against both.
_OWN_ARGUMENTS = (
    "kafka_config",
    "topics",
    "handler",
    "on_complete",
    "on_assign",
    "on_revoke",
    "worker_init",
    "worker_exit",
    "metrics",
)


def _starts_at_end(config: ConsumerConfig) -> bool:
    """Whether a partition with no committed offset starts at its end (librdkafka's
    auto.offset.reset: largest/latest/end, its default), rather than at its beginning."""
    reset = str(config.kafka_config.get("auto.offset.reset", "largest")).lower()
    return reset in ("largest", "latest", "end")


def _metrics(metrics: ConsumerMetrics | bool) -> ConsumerMetrics | None:
    """The metrics to feed: None when off; True builds them in prometheus_client's REGISTRY."""
    if metrics is False:
        return None
    from pyrallel_consumer.metrics import ConsumerMetrics  # the optional extra, on demand

    if metrics is True:
        return ConsumerMetrics()
    if not isinstance(metrics, ConsumerMetrics):
        raise TypeError(
            f"metrics must be True, False or a ConsumerMetrics, got {type(metrics).__name__}"
        )
    return metrics
