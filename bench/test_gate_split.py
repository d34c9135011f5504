"""The gate-row split probe (bench/gate_split.py) stays right: its forms agree with the
whole GEMV and with NumPy, and its split order is the one it says. A quick test, no
timing; skipped where no C compiler (or Cython) can build the probe.

    python -m pytest bench/test_gate_split.py
"""
import os
import shutil
import sysconfig

import numpy as np
import pytest

pytest.importorskip("Cython")
gate_split = pytest.importorskip("gate_split")   # bench/ is on the path (rootdir conftest)


@pytest.fixture(scope="module")
def mod():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) to build the probe")
    return gate_split.build()


@pytest.fixture(scope="module")
def cpus():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the split needs two CPUs")
    return gate_split.two_cpus()


def test_split_rows_puts_each_half_of_the_units_together():
    # G = 4, H = 2: rows i0 i1 f0 f1 g0 g1 o0 o1 -> half 0: i0 f0 g0 o0, half 1: i1 f1 g1 o1
    rows = np.arange(8)
    assert gate_split.split_rows(rows, 4).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    W = np.arange(16.0).reshape(8, 2)
    assert gate_split.split_rows(W, 4)[:, 0].tolist() == [0, 4, 8, 12, 2, 6, 10, 14]
    assert gate_split.split_rows(rows[:4], 1).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("G", [1, 4])
@pytest.mark.parametrize("H", [8, 128])
def test_every_form_agrees_with_whole_and_numpy(mod, cpus, G, H, dtype):
    case = gate_split.Case(G, H, 60, dtype, seed=H + G)
    gate_split.check(mod, case, cpus)   # raises AssertionError naming the form
    assert case.h.dtype == np.dtype(dtype)
    # the chain moves (it may settle at a fixed point later): the first steps' h differ
    assert np.all(np.abs(np.diff(case.h[:11], axis=0)).max(axis=1) > 0)


def test_check_catches_a_wrong_row_order(mod, cpus):
    case = gate_split.Case(4, 16, 10, "float64")
    case.Ws = case.W.copy()   # PyTorch's order where the split's is expected
    with pytest.raises(AssertionError, match="halves"):
        gate_split.check(mod, case, cpus)


@pytest.mark.parametrize("form", ["fallback", "steal"])
def test_fallback_to_one_thread_gives_the_split_bits(mod, cpus, form):
    # both threads on one CPU and no spin budget: the main thread takes the worker's half
    # at the first step the worker is late, and the bits stay the split's
    case = gate_split.Case(4, 64, 40, "float32", seed=3)
    case.run(mod, "split", cpus)
    want = case.h.copy(), case.c.copy()
    abandoned = []
    for _ in range(5):
        _, at = case.run(mod, form, (cpus[0], cpus[0]), 0)
        abandoned.append(at)
        assert np.array_equal(case.h, want[0]) and np.array_equal(case.c, want[1])
    assert any(abandoned), f"{form} never went to one thread"


def test_the_barrier_form_runs_and_takes_time(mod, cpus):
    case = gate_split.Case(1, 2, 100, "float64")
    ns, at = case.run(mod, "barrier", cpus)
    assert ns > 0 and at == 0
