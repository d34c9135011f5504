"""LSTM, what is its own (the rest is the contract suite, test_cell_contract.py): its
equations, the forget gate carrying the cell state c and c's own gradient path, on a
hand-computed two-step case.
"""
import math

import numpy as np

from _cells import dtype_param, functions, impl_param
from _helpers import sigmoid
from fastbptt.cells.spec import LSTM


@impl_param
@dtype_param
def test_hand_computed_two_steps(dtype, impl):
    """T = 2, B = I = H = 1, every equation written out."""
    w_ih = [0.5, -0.25, 0.75, 1.0]     # i, f, g, o
    w_hh = [-0.5, 0.25, 0.5, -0.75]
    b = [0.125, 0.25, -0.125, 0.0625]  # b_ih; b_hh = 0
    x = [1.0, -2.0]
    h_prev, c_prev = 0.375, -0.5
    gh = [0.5, -1.0]                   # dL/dh_t from the loss
    gh_n, gc_n = 2.0, -1.5             # dL/dh_2, dL/dc_2 from outside

    steps = []
    for t in range(2):
        z = [w_ih[k] * x[t] + w_hh[k] * h_prev + b[k] for k in range(4)]
        i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), math.tanh(z[2]), sigmoid(z[3])
        c = f * c_prev + i * g
        h = o * math.tanh(c)
        steps.append(dict(i=i, f=f, g=g, o=o, c=c, h=h, h_prev=h_prev, c_prev=c_prev))
        h_prev, c_prev = h, c
    dh, dc = gh_n, gc_n
    dz = [None, None]
    for t in (1, 0):
        s = steps[t]
        dh += gh[t]
        tc = math.tanh(s["c"])
        dc += dh * s["o"] * (1 - tc ** 2)
        dz[t] = [dc * s["g"] * s["i"] * (1 - s["i"]), dc * s["c_prev"] * s["f"] * (1 - s["f"]),
                 dc * s["i"] * (1 - s["g"] ** 2), dh * tc * s["o"] * (1 - s["o"])]
        dh = sum(dz[t][k] * w_hh[k] for k in range(4))
        dc = dc * s["f"]
    h0 = steps[0]["h_prev"]
    expected = {
        "dx": [[[sum(dz[t][k] * w_ih[k] for k in range(4))]] for t in range(2)],
        "dh0": [[dh]],
        "dc0": [[dc]],
        "dW_ih": [[dz[0][k] * x[0] + dz[1][k] * x[1]] for k in range(4)],
        "dW_hh": [[dz[0][k] * h0 + dz[1][k] * steps[0]["h"]] for k in range(4)],
        "db_ih": [dz[0][k] + dz[1][k] for k in range(4)],
        "db_hh": [dz[0][k] + dz[1][k] for k in range(4)],
    }

    def arr(v):
        return np.array(v, dtype)

    forward, backward = functions(LSTM, impl)
    h, cache = forward(arr([[[x[0]]], [[x[1]]]]), arr([[0.375]]), arr([[-0.5]]),
                       arr([[w] for w in w_ih]), arr([[w] for w in w_hh]), arr(b),
                       arr([0.0] * 4))
    grads = backward(arr([[[gh[0]]], [[gh[1]]]]), cache, dh_n=arr([[gh_n]]),
                     dc_n=arr([[gc_n]]))
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(h, [[[steps[0]["h"]]], [[steps[1]["h"]]]], rtol=rtol)
    np.testing.assert_allclose(cache.h_n, [[steps[1]["h"]]], rtol=rtol)
    np.testing.assert_allclose(cache.c_n, [[steps[1]["c"]]], rtol=rtol)
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.shape == np.shape(value), name
        np.testing.assert_allclose(got, value, rtol=rtol, atol=rtol, err_msg=name)
