"""The thread policy of the compiled time loops (fastbptt.runtime.threads, blas.pxd).

The per-step products run on one BLAS thread whatever the caller's count; the batched
products before and after the loop (the input projection, dW_ih, dX, dW_hh) run on the
caller's count; the count is restored after every call. So everything the time loops
compute (h, the final states, dh0 and dc0, db) has the same bits at 2 threads as at 1;
dx, dW_ih and dW_hh agree to rounding only: OpenBLAS's threaded GEMM may block a long
sum (T*B terms) differently from its one-thread GEMM (measured: last-bit differences in
float64 at T*B = 480).

Which calls are per-step is read from blas.pyx's call log (each call's arguments and the
BLAS thread count it ran at): on time-major problems whose T*B differs from every other
size, the batched products are exactly the GEMMs with T*B rows (m) or T*B terms (k).
The shapes are test_gemm_calls.py's, one per cell, dtype and step form (from step_form).
"""
import threading

import numpy as np
import pytest

import fastbptt
from _cells import make_problem
from _helpers import assert_close, tol_for
from fastbptt._kernels import blas
from fastbptt.bench.problems import make_problem as bench_problem
from fastbptt.bench.problems import runner
from fastbptt.cells.spec import SPECS
from fastbptt.runtime.config import _blas_libraries
from test_gemm_calls import CASES

scipy_blas = [lib for lib in _blas_libraries() if lib["used_by"].startswith("scipy")]
needs_control = pytest.mark.skipif(
    not (scipy_blas and scipy_blas[0]["internal_api"] == "openblas"),
    reason="thread control is implemented for scipy's OpenBLAS only")


@needs_control
def test_scipys_openblas_is_found():
    assert blas.has_thread_control()
    with fastbptt.threads(1):
        assert blas.blas_threads() == 1
    with fastbptt.threads(2):
        assert blas.blas_threads() == 2


@needs_control
def test_set_blas_threads_returns_the_previous_count():
    with fastbptt.threads(2):
        assert blas.set_blas_threads(1) == 2
        assert blas.blas_threads() == 1
        assert blas.set_blas_threads(2) == 1
    with pytest.raises(ValueError, match="n must be >= 1"):
        blas.set_blas_threads(0)


def _logged(run):
    blas.start_call_log()
    try:
        run()
    finally:
        calls = blas.stop_call_log()
    return list(zip(calls, blas.last_call_threads()))


def _batched(call, TB):
    """Whether a logged call is one of the batched products (see the top of this file)."""
    return call[0] == "gemm" and TB in (call[3], call[5])


@needs_control
@pytest.mark.parametrize("kind", ["compiled", "roofline"])
@pytest.mark.parametrize("cell, dtype, shape", CASES)
def test_per_step_products_run_on_one_thread(cell, dtype, shape, kind):
    T, B, I, H = shape
    TB = T * B
    assert TB not in (B, I, H, SPECS[cell].gates * H), "the shape must tell the calls apart"
    run = runner(cell, kind, bench_problem(cell, T, B, I, H, dtype))
    with fastbptt.threads(2):
        logged = _logged(run)
        assert blas.blas_threads() == 2, "the caller's count is restored"
    batched = [n for call, n in logged if _batched(call, TB)]
    steps = [n for call, n in logged if not _batched(call, TB)]
    assert len(steps) >= 2 * T and len(batched) >= 4, logged
    assert set(steps) == {1}, logged
    assert set(batched) == {2}, logged
    with fastbptt.threads(1):
        assert {n for _, n in _logged(run)} == {1}


def _forward_backward(cell, shape, dtype, lengths, batch_first):
    """{name: array}: h, the final states and the gradients of one compiled forward +
    backward."""
    T, B = shape[:2]
    spec = SPECS[cell]
    p = make_problem(spec, *shape, np.dtype(dtype), seed=3, batch_first=batch_first,
                     lengths=np.arange(B) % (T + 1) if lengths else None)
    h, finals, grads = p.run()
    return {"h": h, **{f"{s}_n": f for s, f in zip(spec.states, finals)}, **grads._asdict()}


# the gradients that the batched products after the loop compute
BATCHED = ("dx", "dW_ih", "dW_hh")


# Large enough that OpenBLAS runs the batched products on both threads (the small cases
# stay under its threading thresholds).
LARGE = [pytest.param(cell, dtype, (12, 40, 200, 160), id=f"{cell}-{dtype}-large")
         for cell in SPECS for dtype in ("float32", "float64")]


@needs_control
@pytest.mark.parametrize("batch_first, lengths", [(False, False), (True, True)],
                         ids=["time_major", "batch_first_lengths"])
@pytest.mark.parametrize("cell, dtype, shape", CASES + LARGE)
def test_the_time_loops_give_the_same_bits_at_any_count(cell, dtype, shape, batch_first,
                                                        lengths):
    results = {}
    for n in (1, 2):
        with fastbptt.threads(n):
            results[n] = _forward_backward(cell, shape, dtype, lengths, batch_first)
    rtol = tol_for(dtype)[0]
    for name, at_1 in results[1].items():
        if name in BATCHED:
            assert_close(results[2][name], at_1, rtol, err_msg=name)
        else:
            np.testing.assert_array_equal(results[2][name], at_1, err_msg=name)


@needs_control
def test_concurrent_calls_leave_the_callers_count():
    """Four threads in and out of time loops at once: each sets 1 only when it finds more
    and writes back what it found, so the count ends as the caller set it."""
    shape = (20, 6, 8, 16)
    errors = []

    def work():
        try:
            for _ in range(20):
                _forward_backward("lstm", shape, "float32", False, False)
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    with fastbptt.threads(2):
        workers = [threading.Thread(target=work) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors
        assert blas.blas_threads() == 2

