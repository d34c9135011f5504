"""Declares the Cython extensions; all metadata lives in pyproject.toml.

FASTBPTT_DEBUG=1 at build time turns Cython's bounds, wraparound and initialisation checks
back on (and builds with -O1 -g, symbols kept) so that a kernel indexing out of range
raises instead of corrupting memory. The default build trusts the Python wrappers, which
validate every argument before a kernel runs, and strips the extensions: Python's own
CFLAGS usually carry -g, and the debug sections are most of an unstripped .so.
FASTBPTT_STRIP=0 keeps the symbols of an optimised build (for a profiler).
"""
import glob
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTBPTT_DEBUG", "0") not in ("", "0")
STRIP = not DEBUG and os.environ.get("FASTBPTT_STRIP", "1") not in ("", "0")

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

if sys.platform == "win32":
    # MSVC writes debug information only when asked (/Zi and /DEBUG), so a release
    # build has nothing to strip.
    cflags = ["/O2"] if not DEBUG else ["/Od", "/Zi"]
    ldflags = [] if not DEBUG else ["/DEBUG"]
else:
    cflags = ["-O1", "-g"] if DEBUG else ["-O3"]
    # No -march=native: the build must run on any CPU of its architecture. The hot
    # element-wise loops (vmath.h) carry their own AVX2/AVX-512 clones instead.
    if not STRIP:
        ldflags = []
    elif sys.platform == "darwin":
        ldflags = ["-Wl,-S,-x"]   # Apple's ld: drop debug and local symbols (-s is ignored)
    else:
        ldflags = ["-Wl,-s"]      # GNU ld / lld: strip all symbols not needed to load

# The headers and .pxd files every kernel may include: a change to one rebuilds the
# extensions (the cell headers include their templates, which Cython does not track).
kernel_depends = sorted(glob.glob("src/fastbptt/_kernels/*.h")
                        + glob.glob("src/fastbptt/_kernels/*.pxd"))

kernels = ["blas", "activations", "rnn", "gru", "lstm", "lstmp", "losses", "gemm_roofline",
           "embedding", "step",
           "packed_product", "step_packing"]
extensions = [
    Extension(
        f"fastbptt._kernels.{name}",
        [f"src/fastbptt/_kernels/{name}.pyx"],
        include_dirs=[np.get_include(), "src/fastbptt/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=cflags,
        depends=kernel_depends,
        extra_link_args=ldflags,
        # blas.pyx finds the BLAS's thread-count functions with dladdr/dlsym
        # (blas_threads.h), step_packing loads MKL at run time (dlopen): libdl on a glibc
        # before 2.34 (an empty stub after)
        libraries=["dl"] if name in ("blas", "step_packing") and sys.platform.startswith("linux")
        else [],
    )
    for name in kernels
]
# the driver's compiled fast path (cells/driver.py): in cells, beside the driver, since it
# builds the driver's CellArgs and caches; it calls the kernels' time loops (<cell>.pxd)
extensions.append(Extension(
    "fastbptt.cells._fastpath", ["src/fastbptt/cells/_fastpath.pyx"],
    include_dirs=[np.get_include(), "src/fastbptt/_kernels"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=cflags, depends=kernel_depends, extra_link_args=ldflags,
))

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        # A debug build must not reuse C files generated for an optimised one.
        force=DEBUG,
    ),
)
