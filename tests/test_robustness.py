"""Numerical robustness: saturated gates (pre-activations in the hundreds), very long
sequences (T = 20,000) and large inputs give finite outputs and gradients, and the
float32 path agrees with float64 within the documented tolerance (docs/guarantees.md,
max |f32 - f64| <= 2e-5 * max(1, max |f64|) per result, for contracting recurrences).
"""
import numpy as np
import pytest

import fastbptt
from _cells import cell_functions, cell_problem, nonlinearity_kwargs
from _helpers import assert_close, tol_for
from _registry import Case
from fastbptt import reference
from fastbptt.cells.spec import CELLS

F32_VS_F64 = 2e-5   # documented in docs/guarantees.md; measured up to 1.4e-6 at T = 1000, H = 32


def _problem(cell, dtype, T, B, I, H, seed):
    return cell_problem(cell, Case(T=T, B=B, I=I, H=H, dtype=dtype, seed=seed))


def _run(cell, a, up, mod=fastbptt, **kw):
    """Every result of forward + backward as a list of arrays: h, h_n, gradients."""
    forward, backward = cell_functions(cell, mod)
    h, cache = forward(**a, **kw)
    grads = backward(up["dh"], cache, **{k: v for k, v in up.items() if k != "dh"})
    return [h, cache.h_n] + [g for g in grads if g is not None]


def _cast(d, dtype):
    return {k: v.astype(dtype) for k, v in d.items()}


def _assert_all_finite(results, what):
    for i, r in enumerate(results):
        assert np.isfinite(r).all(), f"{what}: result {i} not finite"


@pytest.mark.parametrize("cell,nonlinearity", [("rnn", "tanh"), ("rnn", "sigmoid"),
                                               ("lstm", None), ("gru", None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_gates(cell, dtype, nonlinearity):
    """x scaled by 300 and W_hh by 100: pre-activations of several hundred, every gate
    at 0 or 1 (exp overflows inside the sigmoid/tanh). Finite, and compiled = reference."""
    a, up = _problem(cell, dtype, T=50, B=3, I=8, H=8, seed=2)
    a["x"] = a["x"] * 300
    a["W_hh"] = a["W_hh"] * 100
    kw = nonlinearity_kwargs(cell, nonlinearity)
    pre = np.abs(a["x"].reshape(-1, 8) @ a["W_ih"].T).max()
    assert pre > 200
    with np.errstate(over="ignore"):
        got = _run(cell, a, up, **kw)
        expected = _run(cell, a, up, mod=reference, **kw)
    _assert_all_finite(got, f"{cell} saturated")
    rtol, atol = tol_for(dtype)
    for g, e in zip(got, expected):
        assert_close(g, e, rtol, atol)
    if nonlinearity == "tanh":
        assert np.mean(np.abs(got[0]) > 0.999) > 0.9   # saturated indeed


@pytest.mark.parametrize("cell", CELLS)
def test_very_long_sequence(cell):
    """T = 20,000, B = 1: finite, and float32 within the documented tolerance of
    float64 (the recurrence contracts, so rounding errors do not compound)."""
    a, up = _problem(cell, np.float64, T=20000, B=1, I=4, H=8, seed=3)
    r64 = _run(cell, a, up)
    r32 = _run(cell, _cast(a, np.float32), _cast(up, np.float32))
    _assert_all_finite(r32, f"{cell} T=20000 float32")
    _assert_all_finite(r64, f"{cell} T=20000 float64")
    for i, (x, y) in enumerate(zip(r32, r64)):
        scale = max(1.0, float(np.max(np.abs(y))))
        err = float(np.max(np.abs(x.astype(np.float64) - y))) / scale
        assert err < F32_VS_F64, f"result {i}: {err:.2e}"


@pytest.mark.parametrize("cell", CELLS)
def test_long_sequence_matches_reference(cell):
    a, up = _problem(cell, np.float32, T=2000, B=2, I=4, H=8, seed=4)
    rtol, atol = tol_for(np.float32)
    for g, e in zip(_run(cell, a, up), _run(cell, a, up, mod=reference)):
        assert_close(g, e, rtol, atol)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T", [100, 1000])
def test_float32_agrees_with_float64(cell, T):
    a, up = _problem(cell, np.float64, T=T, B=4, I=16, H=32, seed=1)
    r64 = _run(cell, a, up)
    r32 = _run(cell, _cast(a, np.float32), _cast(up, np.float32))
    for i, (x, y) in enumerate(zip(r32, r64)):
        assert x.dtype == np.float32
        scale = max(1.0, float(np.max(np.abs(y))))
        err = float(np.max(np.abs(x.astype(np.float64) - y))) / scale
        assert err < F32_VS_F64, f"result {i}: {err:.2e}"


@pytest.mark.parametrize("cell,nonlinearity", [("rnn", "relu"), ("rnn", "identity"),
                                               ("lstm", None), ("gru", None)])
def test_large_inputs(cell, nonlinearity):
    """Inputs of size 1e4 in float32 (unbounded nonlinearities for the RNN, so the
    states are large too): finite, compiled = reference."""
    a, up = _problem(cell, np.float32, T=30, B=3, I=6, H=5, seed=5)
    a["x"] = a["x"] * 1e4
    kw = nonlinearity_kwargs(cell, nonlinearity)
    got = _run(cell, a, up, **kw)
    _assert_all_finite(got, f"{cell} large inputs")
    rtol, atol = tol_for(np.float32)
    for g, e in zip(got, _run(cell, a, up, mod=reference, **kw)):
        assert_close(g, e, rtol, atol)
