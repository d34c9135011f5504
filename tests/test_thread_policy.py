"""The thread policy of the compiled kernels (fastbptt.runtime.threads, blas.pxd).

Every product of a kernel call, the per-step ones and the batched ones before and after
the time loop, runs on one BLAS thread whatever the caller's count (two cores come from
the batch split, tests/test_batch_split.py, which these problems are too small for or
have it turned off); the caller's count is restored after every call; so a call gives
the same bits at 2 threads as at 1.

The thread count of each call is read from blas.pyx's call log (each call's arguments
and the BLAS thread count it ran at). The shapes are test_gemm_calls.py's, one per cell,
dtype and step form (from step_form), and a large one per cell that OpenBLAS would
thread.
"""
import threading

import numpy as np
import pytest

import fastbptt
from _cells import make_problem
from fastbptt._kernels import blas
from fastbptt.bench.problems import make_problem as bench_problem
from fastbptt.bench.problems import runner
from fastbptt.cells import batch_split
from fastbptt.cells.spec import SPECS
from fastbptt.runtime.config import _blas_libraries
from test_gemm_calls import CASES, _calls, use_packer  # noqa: F401 (a fixture)

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
    """[(call, its BLAS thread count)] of what run() called."""
    return list(zip(_calls(run), blas.last_call_threads()))


@needs_control
@pytest.mark.parametrize("kind", ["compiled", "roofline"])
@pytest.mark.parametrize("packer, cell, dtype, shape", CASES)
@pytest.mark.usefixtures("use_packer")
def test_every_product_runs_on_one_thread(packer, cell, dtype, shape, kind):
    T = shape[0]
    run = runner(cell, kind, bench_problem(cell, *shape, dtype))
    with fastbptt.threads(2):
        logged = _logged(run)
        assert blas.blas_threads() == 2, "the caller's count is restored"
    assert len(logged) >= 2 * T + 4, logged   # the per-step and the batched products
    assert {n for _, n in logged} == {1}, logged


def _forward_backward(cell, shape, dtype, lengths, batch_first):
    """{name: array}: h, the final states and the gradients of one compiled forward +
    backward."""
    T, B = shape[:2]
    spec = SPECS[cell]
    p = make_problem(spec, *shape, np.dtype(dtype), seed=3, batch_first=batch_first,
                     lengths=np.arange(B) % (T + 1) if lengths else None)
    h, finals, grads = p.run()
    return {"h": h, **{f"{s}_n": f for s, f in zip(spec.states, finals)}, **grads._asdict()}


# Large enough that OpenBLAS would run the batched products on both threads (the small
# cases stay under its threading thresholds): before the policy, dW_ih differed in the last
# bits at 2 threads in float64.
LARGE = [pytest.param("own", cell, dtype, (12, 40, 200, 160), id=f"{cell}-{dtype}-large")
         for cell in SPECS for dtype in ("float32", "float64")]


@needs_control
@pytest.mark.parametrize("batch_first, lengths", [(False, False), (True, True)],
                         ids=["time_major", "batch_first_lengths"])
@pytest.mark.parametrize("packer, cell, dtype, shape", CASES + LARGE)
@pytest.mark.usefixtures("use_packer")
def test_a_call_gives_the_same_bits_at_any_count(packer, cell, dtype, shape, batch_first,
                                                 lengths, monkeypatch):
    monkeypatch.setattr(batch_split, "MIN_SPLIT_FLOPS", float("inf"))   # no split here
    results = {}
    for n in (1, 2):
        with fastbptt.threads(n):
            results[n] = _forward_backward(cell, shape, dtype, lengths, batch_first)
    for name, at_1 in results[1].items():
        np.testing.assert_array_equal(results[2][name], at_1, err_msg=name)


@needs_control
def test_concurrent_calls_leave_the_callers_count():
    """Four threads in and out of kernel calls at once: each sets 1 only when it finds
    more and writes back what it found, so the count ends as the caller set it."""
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



@needs_control
@pytest.mark.parametrize("grad", [True, False], ids=["with_grad", "loss_only"])
def test_the_output_heads_run_on_one_thread(grad):
    """The fused losses' products (fastbptt._kernels.losses) follow the same policy."""
    rng = np.random.default_rng(0)
    N, H, V = 300, 64, 80    # large enough for OpenBLAS to thread them
    h = rng.standard_normal((N, H))
    W, b = rng.standard_normal((V, H)), rng.standard_normal(V)
    targets = rng.integers(0, V, N)
    results = {}
    for n in (1, 2):
        with fastbptt.threads(n):
            logged = _logged(lambda: results.setdefault(n, fastbptt.softmax_cross_entropy(
                h, W, b, targets, compute_grad=grad)))
            assert blas.blas_threads() == n
        assert len(logged) >= (3 if grad else 1) and {k for _, k in logged} == {1}, logged
    loss2, head2 = results[2]
    loss1, head1 = results[1]
    assert loss2 == loss1
    if grad:
        for a, b_ in zip(head2, head1):
            np.testing.assert_array_equal(a, b_)


@needs_control
def test_sections_nest_and_restore_once():
    """A kernel call inside an open one-thread section (another call's, or the batch
    split's) joins it: it neither restores the count early nor hides the caller's count
    from callers_threads()."""
    with fastbptt.threads(2):
        outer = blas.one_thread_enter()
        assert outer and blas.blas_threads() == 1 and blas.callers_threads() == 2
        _forward_backward("gru", (4, 3, 5, 6), "float64", False, False)
        assert blas.blas_threads() == 1, "the inner call must not restore the count"
        inner = blas.one_thread_enter()
        blas.one_thread_exit(inner)
        assert blas.blas_threads() == 1
        blas.one_thread_exit(outer)
        assert blas.blas_threads() == 2 and blas.callers_threads() == 2
    with fastbptt.threads(1):
        assert blas.one_thread_enter() == 0   # nothing to lower, nothing to end
        assert blas.callers_threads() == 1


@needs_control
def test_show_config_reports_the_policy(capsys):
    with fastbptt.threads(2):
        info = fastbptt.show_config()
    assert info["thread_policy"] == {"control": True, "threads": 2,
                                     "min_split_flops": batch_split.MIN_SPLIT_FLOPS}
    assert "threads: every kernel's products on one BLAS thread; B >= 2" in capsys.readouterr().out
    with fastbptt.threads(1):
        fastbptt.show_config()
    assert "no batch split at 1 thread" in capsys.readouterr().out
