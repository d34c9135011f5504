"""The GEMM roofline makes exactly the compiled kernels' matrix products.

fastbptt bench's roofline column (gemm_roofline.recurrent_gemms, as the benchmark's
roofline runner calls it) claims to time the BLAS calls of one compiled forward+backward
and nothing else. blas.pyx's call log records every gemm/gemv call's arguments
(function, transposes, m, n, k, alpha, leading dimensions, beta); here the benchmark's
compiled run and its roofline run of the same problem must record the same sequence, in
every step form (the shapes are derived from step_form, the policy that picks the form),
with each packer of the packed form that this machine has (fastbptt.runtime.packing).
"""
import numpy as np
import pytest

from fastbptt._kernels import blas
from fastbptt.bench.problems import make_problem, runner
from fastbptt.cells.spec import GEMV_ROWS, PACKED_MIN_STEPS, SPECS, step_form
from fastbptt.runtime import packing

# (T, B, I, H) candidates; the cases below keep, per packer, cell and dtype, the first
# shape of each step form that step_form picks for it, the packed form once at most
# GEMV_ROWS rows and once past them (it comes at B 5-64, and at B 1-4 from
# packed_min_steps(B) steps on, by the own kernel with either packer; past 64 rows the
# other forms again).
_CANDIDATES = [(3, 1, 5, 6), (4, 3, 3, 8), (3, 6, 4, 16), (4, 9, 5, 7), (2, 12, 3, 4),
               (2, 6, 3, 256), (2, 70, 3, 80), (2, 66, 3, 8), (PACKED_MIN_STEPS, 2, 3, 8)]
_DTYPES = ("float32", "float64")
PACKERS = ["own"] + (["mkl"] if packing.packer() == "mkl" else [])


def _cases():
    cases = []
    for packer in PACKERS:
        for name, spec in SPECS.items():
            for dtype in _DTYPES:
                seen = {}
                for T, B, I, H in _CANDIDATES:
                    form = step_form(spec, B, H, dtype, packer, T)
                    seen.setdefault((form, B <= GEMV_ROWS), (T, B, I, H))
                for (form, _), shape in seen.items():
                    label = "x".join(map(str, shape))
                    cases.append(pytest.param(packer, name, dtype, shape,
                                              id=f"{packer}-{name}-{dtype}-{form}-{label}"))
    return cases


CASES = _cases()


@pytest.fixture
def use_packer(request):
    """Runs the test with the packer named by its `packer` parameter, then restores."""
    before = packing.set_packer(request.getfixturevalue("packer"))
    yield
    packing.set_packer(before)


def test_the_cases_cover_every_step_form():
    for packer in PACKERS:
        for name, spec in SPECS.items():
            for dtype in _DTYPES:
                forms = {(step_form(spec, shape[1], shape[3], dtype, packer, shape[0]),
                          shape[1] <= GEMV_ROWS)
                         for p, n, d, shape in (c.values for c in CASES)
                         if (p, n, d) == (packer, name, dtype)}
                expected = {("gemv", True), ("packed", False), ("plain", False)}
                if np.dtype(dtype) in spec.transposed_dtypes:
                    expected.add(("transposed", False))
                expected.add(("packed", True))   # by the own kernel, with either packer
                assert forms == expected, (packer, name, dtype)


def _calls(run):
    blas.start_call_log()
    try:
        run()
    finally:
        calls = blas.stop_call_log()
    return calls


@pytest.mark.parametrize("packer, cell, dtype, shape", CASES)
def test_roofline_makes_the_kernels_calls(packer, cell, dtype, shape, use_packer):
    T, B, I, H = shape
    problem = make_problem(cell, T, B, I, H, dtype)
    compiled = _calls(runner(cell, "compiled", problem))
    roofline = _calls(runner(cell, "roofline", problem))
    # at least the input product and one product per step each way: a log that records
    # nothing would compare equal
    form = step_form(cell, B, H, dtype, packer, T)
    per_step = B if form == "gemv" else 1
    assert len(compiled) >= 2 + 2 * T * per_step
    # the packed form logs its products as such, one per step each way
    assert sum(c[0] == "packed" for c in compiled) == (2 * T if form == "packed" else 0)
    assert roofline == compiled


def test_the_log_is_off_unless_started():
    problem = make_problem("rnn", 3, 2, 4, 5, "float64")
    run = runner("rnn", "compiled", problem)
    assert _calls(run)            # on: something is recorded
    blas.start_call_log()
    blas.stop_call_log()
    run()                         # off: nothing more
    assert blas.stop_call_log() == []


def test_the_log_records_the_row_major_arguments():
    A = np.ones((2, 3))
    B = np.ones((4, 3))
    C = np.zeros((2, 4))
    blas.start_call_log()
    blas.gemm_py(False, True, 1.0, A, B, 0.5, C)
    blas.gemv_py(True, 2.0, A, np.ones(2), 0.0, np.zeros(3))
    assert blas.stop_call_log() == [("gemm", "n", "t", 2, 4, 3, 1.0, 3, 3, 0.5, 4),
                                    ("gemv", "t", 2, 3, 2.0, 3, 0.0)]


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_the_kernels_take_their_buffers_by_keyword_only(spec):
    # 11-20 buffers of one type in a row are a silent swap waiting to happen
    import importlib

    kernel = importlib.import_module(spec.kernel)
    A = np.zeros((2, 2))
    for direction in ("forward", "backward"):
        with pytest.raises(TypeError, match="positional"):
            getattr(kernel, f"{spec.name}_{direction}")(A, A, A)


@pytest.mark.parametrize("cell", sorted(SPECS))
def test_the_roofline_reads_no_uninitialised_memory(cell, monkeypatch):
    """The roofline's buffers that its products read before writing (P past the gates,
    the carry it adds to) start as values, not as whatever np.empty returned: with
    np.empty made to return NaN, its products still give finite results. (Garbage there
    had made the GRU's roofline slower than the whole compiled call, from run to run.)"""
    from fastbptt.bench import problems
    real_empty, real_gemms = np.empty, problems.gemm_roofline.recurrent_gemms
    seen = {}

    def nan_empty(shape, dtype=float, **kwargs):
        return np.full(shape, np.nan, dtype)

    def gemms(**buffers):
        seen.update(buffers)
        return real_gemms(**buffers)

    monkeypatch.setattr(problems.np, "empty", nan_empty)
    monkeypatch.setattr(problems.gemm_roofline, "recurrent_gemms", gemms)
    T, B, I, H = 4, 3, 5, 6
    problem = make_problem(cell, T, B, I, H, np.float64)
    run = problems.runner(cell, "roofline", problem)
    monkeypatch.setattr(problems.np, "empty", real_empty)
    run()
    for name in ("P", "carry", "dX", "dW_ih", "dW_hh"):
        assert np.isfinite(seen[name]).all(), name
