"""Build the optional Cython extensions; all package metadata lives in pyproject.toml.

Native modules, each with a pure-Python twin that is used when the module is not built:
  ext/codec.pyx       -> pyrallel_consumer._codec  (twin: pyrallel_consumer/codec.py, msgpack),
                         with ext/codec_writer.pxi and codec_reader.pxi
  ext/cpu_kernel.pyx  -> bench._cpu_kernel         (twin: bench/cpu_kernel.py, hashlib)
  ext/record_path.pyx -> pyrallel_consumer._record_path: the record path, from
                         ext/records.pxi, backlog.pxi, partition_state.pxi, intake.pxi,
                         completing.pxi, in_flight.pxi, batch_assembly.pxi and lane_table.pxi
                         (both modules include named_tuple.pxi)
                         (twins: record.py, work.py, backlog.py, control/{partition_state,
                         intake,completing,in_flight}.py and engines/{batch_assembly,
                         lane_table}.py in pyrallel_consumer/)
The record path's twins are picked by pyrallel_consumer/native.py (PYRALLEL_NATIVE=0 forces
the pure-Python ones).

The record path is hand-written Cython rather than the twins compiled in Cython's pure-Python
mode: its speed comes from different data structures (a C int64 array for the pending offsets,
list-backed queues with a head index and one object per lane instead of deques and two dicts),
which a .pxd cannot add to the .py source; and the twins' `Generic` base and `__slots__` are
not allowed on a cdef class. Both twins' tests run against both implementations.

Without Cython no extension is built and the package still installs and works, only slower.
`make build-ext` runs `python setup.py build_ext --inplace`.

The distribution is the library alone: its wheel and sdist hold `pyrallel_consumer` and its
extensions, never `bench` (pyproject.toml lists the packages; MANIFEST.in keeps the bench's
kernel source out of the sdist). The bench runs from the checkout, so its kernel is listed here
only when the checkout's bench/ is present (an sdist has none) and built only in place
(`make build-ext`, and the editable install of `make install` / `uv sync`, which also maps the
import name `bench` to the checkout's bench/ for that virtualenv); a wheel build leaves it out.
The images get the bench from its own distribution, images/bench-dist (images/build_wheels.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from Cython.Build import cythonize

    HAVE_CYTHON = True
except ImportError:  # Cython is a build requirement, but a plain `pip install` may lack it
    HAVE_CYTHON = False

# -O3 for the SHA-256 rounds and the msgpack byte loops; MSVC spells its flags differently.
COMPILE_ARGS = ["/O2"] if sys.platform == "win32" else ["-O3"]
# The bench's own extensions: built in place for the checkout, never into the library's wheel.
BENCH_PREFIX = "bench."
HAVE_BENCH = (Path(__file__).resolve().parent / "bench" / "__init__.py").is_file()


def _ext_modules() -> list[Extension]:
    if not HAVE_CYTHON:
        print("setup.py: Cython is not installed, building no native extensions", file=sys.stderr)
        return []
    extensions = [
        Extension("pyrallel_consumer._codec", ["ext/codec.pyx"], extra_compile_args=COMPILE_ARGS),
        Extension(
            "pyrallel_consumer._record_path",
            ["ext/record_path.pyx"],
            extra_compile_args=COMPILE_ARGS,
        ),
    ]
    if HAVE_BENCH:
        extensions.append(
            Extension("bench._cpu_kernel", ["ext/cpu_kernel.pyx"], extra_compile_args=COMPILE_ARGS)
        )
    return cythonize(
        extensions,
        # No "Compiling ... because it depends on ..." / "Cythonizing" lines; errors still print.
        quiet=True,
        compiler_directives={
            "language_level": 3,
            # Bounds checks stay on: they cost next to nothing on list and tuple indexing, and
            # the codec must never read past a sequence that changed under it.
            "embedsignature": True,
            # Declares each module safe without the GIL (Py_mod_gil = Py_MOD_GIL_NOT_USED): a
            # free-threaded Python (3.14t, 3.15t) re-enables the GIL for the whole process when
            # it imports a module without it. Safe here: the record-path structures are owned by
            # one thread at a time (README, "Concurrency model"), the codec and the cpu kernel
            # keep no state between calls, and the one field two threads touch,
            # WorkItem.cancelled, is a one-way store of an immortal object.
            "freethreading_compatible": True,
        },
    )


class LibraryBuildExt(build_ext):
    """build_ext that builds the bench's extensions only in place (--inplace, or an editable
    install, whose finalize_options turns inplace on), so no wheel of the library carries one."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.inplace:
            # A new list: the distribution's own ext_modules still name bench._cpu_kernel, which
            # is what makes an editable install map `bench` to the checkout.
            self.extensions = [e for e in self.extensions if not e.name.startswith(BENCH_PREFIX)]


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": LibraryBuildExt})
