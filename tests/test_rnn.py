"""Vanilla RNN, what is its own (the rest is the contract suite, test_cell_contract.py):
its equation on a hand-computed case, and relu's kink, where finite differences need a
problem whose pre-activations keep clear of 0.
"""
import math

import numpy as np
import pytest

from _cells import (
    apply_policy,
    assert_matches_finite_differences,
    dtype_param,
    form_cases,
    functions,
    impl_param,
    layout_param,
    make_problem,
)
from fastbptt.cells.spec import RNN


@impl_param
@dtype_param
def test_hand_computed_tanh(dtype, impl):
    """T = 2, B = I = H = 1, tanh, written out step by step."""
    w_ih, w_hh, b_ih, b_hh, h0 = 0.5, -0.75, 0.125, 0.25, 0.375
    x1, x2 = 1.0, -2.0
    g1, g2, gn = 0.5, -1.0, 2.0      # dL/dh_1, dL/dh_2 from the loss, dL/dh_2 from outside

    a1 = w_ih * x1 + b_ih + w_hh * h0 + b_hh
    h1 = math.tanh(a1)
    a2 = w_ih * x2 + b_ih + w_hh * h1 + b_hh
    h2 = math.tanh(a2)
    dA2 = (g2 + gn) * (1 - h2 ** 2)
    dA1 = (g1 + dA2 * w_hh) * (1 - h1 ** 2)
    expected = {
        "dx": [[[dA1 * w_ih]], [[dA2 * w_ih]]],
        "dh0": [[dA1 * w_hh]],
        "dW_ih": [[dA1 * x1 + dA2 * x2]],
        "dW_hh": [[dA1 * h0 + dA2 * h1]],
        "db_ih": [dA1 + dA2],
        "db_hh": [dA1 + dA2],
    }

    def arr(v):
        return np.array(v, dtype)

    forward, backward = functions(RNN, impl)
    h, cache = forward(arr([[[x1]], [[x2]]]), arr([[h0]]), arr([[w_ih]]), arr([[w_hh]]),
                       arr([b_ih]), arr([b_hh]), nonlinearity="tanh")
    grads = backward(arr([[[g1]], [[g2]]]), cache, dh_n=arr([[gn]]))
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(h, [[[h1]], [[h2]]], rtol=rtol)
    assert h.shape == (2, 1, 1)
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.shape == np.shape(value), name
        np.testing.assert_allclose(got, value, rtol=rtol, err_msg=name)


# ------------------------------------------------------------------ relu's kink

def preactivations(p):
    """Every a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (T, B, H) of problem p, in
    float64, by the textbook loop with relu."""
    x = p.time_major("x")
    T, B, _, H = p.shape
    h = np.zeros((B, H)) if p["h0"] is None else p["h0"].astype(np.float64)
    bias = 0.0 if p["b_ih"] is None else p["b_ih"] + p["b_hh"]
    out = np.empty((T, B, H))
    for t in range(T):
        out[t] = x[t] @ p["W_ih"].T + h @ p["W_hh"].T + bias
        h = np.maximum(out[t], 0)
    return out


def _relu_problem(shape, batch_first):
    """A float64 relu problem whose pre-activations keep clear of the kink at 0, where
    the loss has no derivative and central differences straddle two slopes."""
    for seed in range(100):
        p = make_problem(RNN, *shape, np.float64, options={"nonlinearity": "relu"},
                         batch_first=batch_first, seed=seed)
        if np.min(np.abs(preactivations(p))) > 1e-3:
            return p
    raise AssertionError("no seed keeps relu's pre-activations away from 0")


@impl_param
@layout_param
@pytest.mark.parametrize("case", form_cases(RNN, np.float64, 4, 2, 6), ids=lambda c: c.id)
def test_relu_gradients_match_finite_differences(case, batch_first, impl, monkeypatch):
    # the packed form, and with MKL's packer the transposed one, is forced at this H
    apply_policy(case, monkeypatch)
    p = _relu_problem(case.shape, batch_first)
    assert_matches_finite_differences(p, impl, case)
