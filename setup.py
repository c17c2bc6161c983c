"""Build the optional Cython extensions; all package metadata lives in pyproject.toml.

Two native modules, each with a pure-Python twin that is used when the module is not built:
  ext/codec.pyx       -> pyrallel_consumer._codec  (twin: pyrallel_consumer/codec.py, msgpack)
  ext/cpu_kernel.pyx  -> bench._cpu_kernel         (twin: bench/cpu_kernel.py, hashlib)

Without Cython no extension is built and the package still installs and works, only slower.
`make build-ext` runs `python setup.py build_ext --inplace`.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize

    HAVE_CYTHON = True
except ImportError:  # Cython is a build requirement, but a plain `pip install` may lack it
    HAVE_CYTHON = False

# -O3 for the SHA-256 rounds and the msgpack byte loops; MSVC spells its flags differently.
COMPILE_ARGS = ["/O2"] if sys.platform == "win32" else ["-O3"]


def _ext_modules() -> list[Extension]:
    if not HAVE_CYTHON:
        print("setup.py: Cython is not installed, building no native extensions", file=sys.stderr)
        return []
    extensions = [
        Extension("pyrallel_consumer._codec", ["ext/codec.pyx"], extra_compile_args=COMPILE_ARGS),
        Extension("bench._cpu_kernel", ["ext/cpu_kernel.pyx"], extra_compile_args=COMPILE_ARGS),
    ]
    return cythonize(
        extensions,
        # No "Compiling ... because it depends on ..." / "Cythonizing" lines; errors still print.
        quiet=True,
        compiler_directives={
            "language_level": 3,
            # Bounds checks stay on: they cost next to nothing on list and tuple indexing, and
            # the codec must never read past a sequence that changed under it.
            "embedsignature": True,
        },
    )


setup(ext_modules=_ext_modules())
