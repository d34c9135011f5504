"""pytest-benchmark suite of every cell (fastbptt.cells.spec.SPECS): compiled
forward+backward against the reference, PyTorch and the GEMM roofline.

The same shapes (the issue's six), dtypes, random problems and timed unit as `fastbptt
bench` (all from fastbptt.bench); the timing itself is conftest.py's
forward_backward_benchmark, at conftest.THREADS BLAS threads. Ids read
cell-shape-dtype-backend, e.g. test_forward_backward[lstm-100x32x256x256-float32-compiled];
`-k lstm` runs one cell.
"""
import pytest

from fastbptt import bench
from fastbptt.cells.spec import CELLS


@pytest.mark.parametrize("backend", bench.ALL_BACKENDS)
@pytest.mark.parametrize("dtype", bench.DEFAULT_DTYPES)
@pytest.mark.parametrize("shape", bench.ISSUE_SHAPES,
                         ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("cell", CELLS)
def test_forward_backward(forward_backward_benchmark, cell, shape, dtype, backend):
    forward_backward_benchmark(cell, shape, dtype, backend)
