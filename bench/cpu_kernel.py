"""The bench's `cpu` workload: a SHA-256 chain over the record payload.

Definition (both implementations compute exactly this):

    digest = SHA-256(payload)
    repeat iterations - 1 times: digest = SHA-256(digest)
    return digest                      # 32 bytes

so ``iterations`` is the number of SHA-256 computations. It must be an int >= 1: with 0 there
would be no digest to return, and silently returning the payload would make a "cpu" run that
does no work, so 0 and negatives are a ValueError.

Two implementations:

- ``native``: ``bench._cpu_kernel`` (ext/cpu_kernel.pyx), a self-contained SHA-256 in C that runs
  the whole chain with the GIL released, so threads (the async engine's pool) use every core;
- ``python``: hashlib, ``sha256_chain_python``. It holds the GIL between rounds (and hashlib keeps
  it for inputs this short), so threads do not help it.

``PYRALLEL_CPU_KERNEL`` picks one at import: ``auto`` (default: native if built), ``native``
(ImportError if not built) or ``python``. ``IMPLEMENTATION`` says which ``sha256_chain`` is.

``python -m bench.cpu_kernel`` measures one thread against two threads (wall and CPU time), which
shows whether the kernel really runs in parallel.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Sequence

__all__ = [
    "IMPLEMENTATION",
    "load_kernel",
    "sha256_chain",
    "sha256_chain_python",
]

ENV_VAR = "PYRALLEL_CPU_KERNEL"
CHOICES = ("auto", "native", "python")

Kernel = Callable[[bytes, int], bytes]


def _check_iterations(iterations: int) -> None:
    if type(iterations) is not int:
        raise TypeError(f"iterations must be an int, got {type(iterations).__name__}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")


def sha256_chain_python(payload: bytes, iterations: int) -> bytes:
    """The SHA-256 chain (see the module docstring) with hashlib: the reference."""
    _check_iterations(iterations)
    sha256 = hashlib.sha256
    digest = sha256(payload).digest()
    for _ in range(iterations - 1):
        digest = sha256(digest).digest()
    return digest


def _load_native() -> Kernel:
    try:
        _cpu_kernel = importlib.import_module("bench._cpu_kernel")
    except ImportError as exc:
        raise ImportError(
            "the native CPU kernel (bench._cpu_kernel) is not built: run `make build-ext` "
            f"(python setup.py build_ext --inplace), or set {ENV_VAR}=python"
        ) from exc
    native: Callable[[bytes, int], bytes] = _cpu_kernel.sha256_chain

    def sha256_chain_native(payload: bytes, iterations: int) -> bytes:
        """The SHA-256 chain in C, with the GIL released for the whole computation."""
        _check_iterations(iterations)  # same TypeError/ValueError as the twin, bools included
        return native(payload, iterations)

    return sha256_chain_native


def load_kernel(name: str = "auto") -> tuple[str, Kernel]:
    """Return (implementation name, function) for "native", "python" or "auto".

    Raises ImportError for "native" when the extension is not built, ValueError for any other
    name.
    """
    if name == "python":
        return "python", sha256_chain_python
    if name == "native":
        return "native", _load_native()
    if name == "auto":
        try:
            return "native", _load_native()
        except ImportError:
            return "python", sha256_chain_python
    raise ValueError(f"cpu kernel must be one of {', '.join(CHOICES)}, got {name!r}")


def _from_environment() -> tuple[str, Kernel]:
    name = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if name not in CHOICES:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(CHOICES)}, got {name!r}")
    return load_kernel(name)


IMPLEMENTATION, sha256_chain = _from_environment()


# --- `python -m bench.cpu_kernel`: does the kernel run in parallel? --------------------------


def _run_threads(
    kernel: Kernel, payloads: Sequence[bytes], iterations: int, threads: int
) -> tuple[float, float]:
    """Every thread hashes every payload; returns (wall seconds, process CPU seconds)."""

    def work() -> None:
        for payload in payloads:
            kernel(payload, iterations)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    wall, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one thread vs two threads on the cpu kernel")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--payloads", type=int, default=2000, help="payloads per thread")
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    payloads = [os.urandom(args.payload_size) for _ in range(args.payloads)]
    names = ["python"]
    try:
        load_kernel("native")
        names.insert(0, "native")
    except ImportError:
        print("native kernel not built (make build-ext): timing the python one only")
    print(f"{args.payloads} payloads of {args.payload_size} bytes, {args.iterations} iterations")
    for name in names:
        _, kernel = load_kernel(name)
        wall1, cpu1 = _run_threads(kernel, payloads, args.iterations, 1)
        walln, cpun = _run_threads(kernel, payloads, args.iterations, args.threads)
        print(
            f"{name:>6}: 1 thread wall {wall1:.3f}s cpu {cpu1:.3f}s "
            f"({args.payloads / wall1:,.0f} payloads/s) | {args.threads} threads wall "
            f"{walln:.3f}s cpu {cpun:.3f}s ({args.threads * args.payloads / walln:,.0f} "
            f"payloads/s) | parallel speed-up {args.threads * wall1 / walln:.2f}x, "
            f"cpu/wall {cpun / walln:.2f}"
        )


if __name__ == "__main__":
    main()
