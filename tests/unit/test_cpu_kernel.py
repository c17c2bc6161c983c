"""The `cpu` workload kernel: digests equal hashlib's chain, and the native one releases the GIL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.cpu_kernel import load_kernel, sha256_chain_python

ROOT = Path(__file__).resolve().parents[2]


def _native_built() -> bool:
    try:
        load_kernel("native")
    except ImportError:
        return False
    return True


needs_native = pytest.mark.skipif(
    not _native_built(), reason="native cpu kernel not built (run `make build-ext`)"
)
IMPLEMENTATIONS = ["python", pytest.param("native", marks=needs_native)]


def reference_chain(payload: bytes, iterations: int) -> bytes:
    """The definition, spelled out independently of bench.cpu_kernel."""
    digest = hashlib.sha256(payload).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest


@pytest.fixture(params=IMPLEMENTATIONS)
def kernel(request: pytest.FixtureRequest):
    return load_kernel(request.param)[1]


def test_known_vectors(kernel) -> None:
    # FIPS 180-2 examples, one round; then the chain grows from them.
    assert kernel(b"abc", 1).hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert kernel(b"", 1).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert (
        kernel(b"abc", 2)
        == hashlib.sha256(
            bytes.fromhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        ).digest()
    )


# Every padding case: lengths around the 55/56/64-byte block boundaries, and many blocks.
@pytest.mark.parametrize("size", [0, 1, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 2**20])
@pytest.mark.parametrize("iterations", [1, 2, 3, 17, 500])
def test_matches_hashlib_chain(kernel, size: int, iterations: int) -> None:
    payload = os.urandom(size)
    assert kernel(payload, iterations) == reference_chain(payload, iterations)


@needs_native
@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=400), iterations=st.integers(1, 64))
def test_native_equals_python_for_any_payload(payload: bytes, iterations: int) -> None:
    native = load_kernel("native")[1]
    assert native(payload, iterations) == sha256_chain_python(payload, iterations)


def test_accepts_bytes_like_payloads(kernel) -> None:
    expected = reference_chain(b"payload", 5)
    assert kernel(bytearray(b"payload"), 5) == expected
    assert kernel(memoryview(b"xpayload")[1:], 5) == expected


@pytest.mark.parametrize("iterations", [0, -1])
def test_iterations_below_one_is_a_value_error(kernel, iterations: int) -> None:
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        kernel(b"x", iterations)


@pytest.mark.parametrize("iterations", [1.0, "3", True])
def test_iterations_of_the_wrong_type_is_a_type_error(kernel, iterations: object) -> None:
    with pytest.raises(TypeError, match="iterations must be an int"):
        kernel(b"x", iterations)


@needs_native
def test_native_kernel_lets_other_threads_run() -> None:
    """While the kernel runs, a Python thread keeps making progress.

    The switch interval is made huge, so the interpreter never forces a thread to give up the
    GIL: the counting thread can only run while the main thread blocks or releases the GIL on
    its own, i.e. inside the kernel. Progress is asserted, not a duration.
    """
    native = load_kernel("native")[1]
    counter = 0
    running = threading.Event()
    stop = threading.Event()

    def count() -> None:
        nonlocal counter
        running.set()
        while not stop.is_set():
            counter += 1
            time.sleep(0.0001)  # hand the GIL back voluntarily, so the main thread can resume

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    thread = threading.Thread(target=count, daemon=True)
    try:
        thread.start()
        running.wait(timeout=10)
        before = counter
        native(b"payload", 400_000)  # about 0.1 s of hashing, all of it without the GIL
        during = counter - before
    finally:
        stop.set()
        sys.setswitchinterval(old_interval)
        thread.join(timeout=10)
    assert during > 0, "the counting thread never ran while the native kernel was hashing"


def _implementation_with(env_value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYRALLEL_CPU_KERNEL": env_value, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "from bench import cpu_kernel; print(cpu_kernel.IMPLEMENTATION)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_environment_forces_python() -> None:
    assert _implementation_with("python").stdout.strip() == "python"


@needs_native
def test_environment_selects_native_by_default() -> None:
    assert _implementation_with("auto").stdout.strip() == "native"
    assert _implementation_with("native").stdout.strip() == "native"


def test_environment_rejects_unknown_names() -> None:
    proc = _implementation_with("gpu")
    assert proc.returncode != 0
    assert "PYRALLEL_CPU_KERNEL" in proc.stderr


def test_without_the_extension_auto_falls_back_and_native_says_how_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bench._cpu_kernel", None)  # import now fails
    assert load_kernel("auto")[0] == "python"
    with pytest.raises(ImportError, match="make build-ext"):
        load_kernel("native")


def test_load_kernel_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        load_kernel("gpu")
