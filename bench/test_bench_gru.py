"""pytest-benchmark suite of the GRU: compiled forward+backward against the
reference, PyTorch and the GEMM roofline.

The same shapes (the issue's six), dtypes, random problems and timed unit as `fastbptt
bench` (all from fastbptt.bench); the timing itself is conftest.py's
forward_backward_benchmark, at conftest.THREADS BLAS threads.
"""
import pytest

from fastbptt import bench

CELL = "gru"


@pytest.mark.parametrize("backend", bench.ALL_BACKENDS)
@pytest.mark.parametrize("dtype", bench.DEFAULT_DTYPES)
@pytest.mark.parametrize("shape", bench.ISSUE_SHAPES,
                         ids=lambda shape: "x".join(map(str, shape)))
def test_gru_forward_backward(forward_backward_benchmark, shape, dtype, backend):
    forward_backward_benchmark(CELL, shape, dtype, backend)
