"""yappi profiling of a benchmark run: one .prof file (pstat format) per mode, per-worker files
for the process engine, and the top-N table on stdout.

--profile-threads   profile every thread (yappi profile_threads=True); otherwise only the thread
                    that starts the profile (the one calling run()).
--profile-greenlets coroutine-aware accounting: yappi is switched to its greenlet context backend
                    when the `greenlet` package is present (each greenlet becomes a context, as
                    threads are), and every sample is tagged with the asyncio task that ran it,
                    so the top-N output also lists the busiest tasks. Without the option yappi
                    still measures coroutines correctly (wall time excludes suspended time), but
                    all tasks of a thread are merged.

yappi is an optional dependency (the `bench` group; a new Python release may have no build of
it yet): it is imported when a profile starts, so the bench runs without it unless --profile
is given, and the command line refuses --profile up front with missing_profiler()'s line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import io
import os
import pstats
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

INSTALL_HINT = "pip install yappi (or `make install`: the bench's dependency group has it)"


def _yappi() -> ModuleType:
    """The yappi module; ImportError saying how to install it when it cannot be imported."""
    try:
        return importlib.import_module("yappi")
    except ImportError as exc:
        raise ImportError(
            f"--profile needs yappi, which cannot be imported here ({exc}); {INSTALL_HINT}"
        ) from exc


def missing_profiler() -> str | None:
    """Why profiling cannot run here (yappi not importable), in one line; None when it can."""
    try:
        _yappi()
    except ImportError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class ProfileSettings:
    directory: Path
    clock: str = "wall"
    top_n: int = 20
    threads: bool = False
    greenlets: bool = False


def profile_path(directory: Path, stem: str) -> Path:
    """<directory>/<stem>.prof; the stem is pyrallel-<mode>[-<workload>] (bench/run/context.py)."""
    return directory / f"{stem}.prof"


# Tags are ints: one per coroutine function name, so tasks are reported by what they run
# (`Engine._run_one`), not by an address that means nothing after the run.
_TAG_BY_NAME: dict[str, int] = {}


def _task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    code = getattr(coro, "cr_code", None)
    where = f" ({Path(code.co_filename).name}:{code.co_firstlineno})" if code is not None else ""
    return f"{name}{where}"


def _asyncio_task_tag() -> int:
    """yappi tag callback: the tag of the coroutine function the running asyncio task runs
    (0 outside any task)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return 0
    if task is None:
        return 0
    name = _task_name(task)
    tag = _TAG_BY_NAME.get(name)
    if tag is None:
        tag = _TAG_BY_NAME[name] = len(_TAG_BY_NAME) + 1
    return tag


def task_names() -> dict[int, str]:
    """Tag -> coroutine function name of the tasks seen so far."""
    return {tag: name for name, tag in _TAG_BY_NAME.items()}


def _configure(yappi: ModuleType, settings: ProfileSettings) -> None:
    yappi.clear_stats()
    yappi.set_clock_type(settings.clock)
    if settings.greenlets:
        backend = "greenlet" if importlib.util.find_spec("greenlet") else "native_thread"
        yappi.set_context_backend(backend)
        yappi.set_tag_callback(_asyncio_task_tag)
    else:
        yappi.set_context_backend("native_thread")
        yappi.set_tag_callback(None)


def _top_table(stats: Any, top_n: int) -> str:
    """The top-N rows of a yappi YFuncStats."""
    buffer = io.StringIO()
    stats.sort("ttot", "desc")
    buffer.write(f"{'ttot s':>10} {'tsub s':>10} {'calls':>10}  function\n")
    for index, func in enumerate(stats):
        if index >= top_n:
            break
        name = f"{func.name} ({Path(func.module).name}:{func.lineno})"
        buffer.write(f"{func.ttot:10.4f} {func.tsub:10.4f} {func.ncall:10d}  {name}\n")
    return buffer.getvalue()


def _top_tasks(yappi: ModuleType, top_n: int) -> str:
    """Busiest asyncio tasks by total time (tags set by _asyncio_task_tag)."""
    totals: dict[int, float] = {}
    for func in yappi.get_func_stats():
        if func.tag:
            totals[func.tag] = totals.get(func.tag, 0.0) + func.tsub
    if not totals:
        return ""
    names = task_names()
    busiest = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[: max(top_n, 1)]
    lines = [f"asyncio task kinds profiled: {len(totals)}; busiest (own time, s, all tasks):"]
    lines += [f"  {names.get(tag, f'tag {tag}')}: {seconds:.4f}" for tag, seconds in busiest]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def profiled(settings: ProfileSettings, path: Path, title: str) -> Iterator[None]:
    """Profile the body with yappi, save `path` (pstat), print the top-N functions; ImportError
    before the body runs when yappi cannot be imported."""
    yappi = _yappi()
    _configure(yappi, settings)
    yappi.start(builtins=False, profile_threads=settings.threads)
    try:
        yield
    finally:
        yappi.stop()
        stats = yappi.get_func_stats()
        path.parent.mkdir(parents=True, exist_ok=True)
        stats.save(str(path), type="pstat")
        if settings.top_n:
            print(
                f"\n--- profile {title}: top {settings.top_n} by total time "
                f"({settings.clock} clock) -> {path}"
            )
            print(_top_table(stats, settings.top_n), end="")
            if settings.greenlets:
                print(_top_tasks(yappi, settings.top_n), end="")
        yappi.clear_stats()


# --- process-engine workers (run inside each worker process; picklable via partial) ---------


def start_worker_profile(clock: str) -> None:
    """worker_init hook: start yappi in this worker process.

    Every thread is profiled regardless of --profile-threads: a worker runs its handlers in
    threads, so its main thread alone would show nothing but waiting for the next batch.
    """
    yappi = _yappi()
    yappi.clear_stats()
    yappi.set_clock_type(clock)
    yappi.start(builtins=False, profile_threads=True)


def stop_worker_profile(directory: str, stem: str) -> None:
    """worker_exit hook: save <directory>/<stem>-worker-<pid>.prof."""
    yappi = _yappi()
    yappi.stop()
    target = Path(directory) / f"{stem}-worker-{os.getpid()}.prof"
    target.parent.mkdir(parents=True, exist_ok=True)
    yappi.get_func_stats().save(str(target), type="pstat")
    yappi.clear_stats()


def worker_profiles(directory: Path, stem: str) -> list[Path]:
    """The per-worker files a process run left behind."""
    return sorted(directory.glob(f"{stem}-worker-*.prof"))


def aggregate_top(paths: list[Path], top_n: int, title: str) -> str:
    """The top-N functions of several .prof files (the process workers) added together."""
    buffer = io.StringIO()
    combined = pstats.Stats(*(str(p) for p in paths), stream=buffer)
    combined.sort_stats("tottime")
    buffer.write(
        f"\n--- profile {title}: {len(paths)} process workers aggregated, top {top_n} by own time\n"
    )
    combined.print_stats(top_n)
    return buffer.getvalue()


def clear_worker_profiles(directory: Path, stem: str) -> None:
    """Remove per-worker files of an earlier invocation so they are not reported as this one's."""
    for stale in worker_profiles(directory, stem):
        stale.unlink(missing_ok=True)
