"""Compiled kernels. Private: call them through the validated wrappers in fastbptt."""

# With the mkl extra installed, MKL becomes the per-step products' packer and the library
# of every other product before any kernel runs one (fastbptt.runtime.packing), so that no
# call in the process runs on the other library's rounding.
from fastbptt.runtime import packing as _packing  # noqa: E402

_packing.packer()
