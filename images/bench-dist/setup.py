"""The bench's compiled kernel for pyrallel-consumer-bench (metadata: pyproject.toml here).

ext/cpu_kernel.pyx -> bench._cpu_kernel, with the flags and directives of the library's
setup.py. Cython is required here, not optional: the images assert that the kernel is native.
"""

from __future__ import annotations

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["/O2"] if sys.platform == "win32" else ["-O3"]

setup(
    ext_modules=cythonize(
        [Extension("bench._cpu_kernel", ["ext/cpu_kernel.pyx"], extra_compile_args=COMPILE_ARGS)],
        quiet=True,
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
