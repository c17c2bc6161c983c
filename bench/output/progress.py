"""Progress of one run, fed from the consumer's on_complete callback.

On a terminal: a tqdm bar on stderr (when stderr is a TTY), redrawn in place. Off a terminal
(stdout piped to a file, `tee` or a CI log): one line on stdout every ~10 s with the records
done, the rate over the last interval and the time elapsed, since a redrawn bar would be
either invisible or a wall of carriage returns there. --no-progress turns both off.

Updates of the bar are batched: on_complete runs once per record on the consumer's thread, and
tqdm's per-call bookkeeping is not free at tens of thousands of records per second.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

_BATCH = 64
# Seconds between two lines off a terminal, and how often the reporting thread checks.
LINE_INTERVAL_S = 10.0
_POLL_S = 1.0


def format_duration(seconds: float) -> str:
    """`42 s`, `8 min 20 s`, `1 h 05 min`: seconds rounded to what a reader plans with."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class ProgressLines:
    """Every `interval_s` seconds of `clock` (seconds), one line on `stream`:
    `   baseline/sleep: 1,900/100,000 records (1.9%), 190 records/s, 10 s elapsed, about
    8 min 36 s left` (the rate and what is left from the last interval). An open loop's
    `warmup` records count in the total, and the line says so: `(1.9%; 6,000 of them warm-up)`.

    `tick()` prints the line when it is due; between __enter__ and __exit__ a daemon thread
    calls it every second, so a stalled run (a join, a stuck key) still reports.
    """

    def __init__(
        self,
        total: int,
        description: str,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = LINE_INTERVAL_S,
        warmup: int = 0,
    ) -> None:
        self._total = total
        self._warmup = warmup
        self._description = description
        self._stream = stream
        self._clock = clock
        self._interval_s = interval_s
        self._done = 0  # written by the consumer's thread, read by the reporting thread
        self._started = clock()
        self._last_at, self._last_done = self._started, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def advance(self, count: int = 1) -> None:
        self._done += count

    def tick(self) -> None:
        """Print a line if `interval_s` passed since the last one (or the start)."""
        now = self._clock()
        if now - self._last_at < self._interval_s:
            return
        done = self._done
        rate = (done - self._last_done) / (now - self._last_at)
        self._last_at, self._last_done = now, done
        notes = [f"{done / self._total:.1%}"] if self._total else []
        if self._warmup:
            notes.append(f"{self._warmup:,} of them warm-up")
        share = f" ({'; '.join(notes)})" if notes else ""
        left = f", about {format_duration((self._total - done) / rate)} left" if rate > 0 else ""
        print(
            f"   {self._description}: {done:,}/{self._total:,} records{share}, "
            f"{rate:,.0f} records/s, {format_duration(now - self._started)} elapsed{left}",
            file=self._stream,
            flush=True,
        )

    def _report(self) -> None:
        while not self._stop.wait(_POLL_S):
            self.tick()

    def start(self) -> None:
        self._started = self._last_at = self._clock()
        self._thread = threading.Thread(target=self._report, name="bench-progress", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class Progress:
    """The progress of one run: a bar on stderr when `stream` (stdout unless a test says
    otherwise) is a terminal, else lines on `stream`; nothing when `enabled` is False.
    `total` counts the open loop's `warmup` records, which both name."""

    def __init__(
        self,
        total: int,
        description: str,
        enabled: bool,
        *,
        warmup: int = 0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bar: Any = None
        self._lines: ProgressLines | None = None
        self._pending = 0
        out = sys.stdout if stream is None else stream
        if not enabled:
            return
        if not out.isatty():
            self._lines = ProgressLines(total, description, out, clock, warmup=warmup)
        else:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=description + (f" ({warmup:,} warm-up)" if warmup else ""),
                unit="msg",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                mininterval=0.25,
            )

    @staticmethod
    def wanted(no_progress: bool) -> bool:
        """A bar needs stderr on a terminal; lines are wanted whenever stdout is not one."""
        return not no_progress and (sys.stderr.isatty() or not sys.stdout.isatty())

    def advance(self, count: int = 1) -> None:
        if self._lines is not None:
            self._lines.advance(count)
        if self._bar is None:
            return
        self._pending += count
        if self._pending >= _BATCH:
            self._bar.update(self._pending)
            self._pending = 0

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
            self._lines = None
        if self._bar is None:
            return
        if self._pending:
            self._bar.update(self._pending)
            self._pending = 0
        self._bar.close()
        self._bar = None

    def __enter__(self) -> Progress:
        if self._lines is not None:
            self._lines.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
