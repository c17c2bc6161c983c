"""A progress bar on stderr for one run, fed from the consumer's on_complete callback.

On only when stderr is a TTY and --no-progress is not given, so logs and CI output stay clean.
Updates are batched: on_complete runs once per record on the consumer's thread, and tqdm's
per-call bookkeeping is not free at tens of thousands of records per second.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

_BATCH = 64


class Progress:
    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self._bar: Any = None
        self._pending = 0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=description,
                unit="msg",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                mininterval=0.25,
            )

    @staticmethod
    def wanted(no_progress: bool) -> bool:
        return not no_progress and sys.stderr.isatty()

    def advance(self, count: int = 1) -> None:
        if self._bar is None:
            return
        self._pending += count
        if self._pending >= _BATCH:
            self._bar.update(self._pending)
            self._pending = 0

    def close(self) -> None:
        if self._bar is None:
            return
        if self._pending:
            self._bar.update(self._pending)
            self._pending = 0
        self._bar.close()
        self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
