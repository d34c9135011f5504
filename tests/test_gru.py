"""GRU, what is its own (the rest is the contract suite, test_cell_contract.py): its
equations, with PyTorch's placement of b_hn inside the reset gate's product
(n = tanh(W_in x + b_in + r * (W_hn h + b_hn))), on a hand-computed two-step case.
"""
import math

import numpy as np

from _cells import dtype_param, functions, impl_param
from _helpers import assert_close, sigmoid
from fastbptt.cells.spec import GRU


@impl_param
@dtype_param
def test_hand_computed(dtype, impl):
    """T = 2, B = I = H = 1, written out step by step from the equations."""
    w_ih = [0.5, -0.25, 0.75]        # r, z, n
    w_hh = [-0.5, 0.375, 0.625]
    b_ih = [0.125, -0.125, 0.25]
    b_hh = [0.25, 0.0625, -0.375]
    h0, xs = 0.375, [1.0, -2.0]
    gs, gn = [0.5, -1.0], 2.0        # dL/dh_1, dL/dh_2 from the loss; dL/dh_2 from outside

    steps, h = [], h0
    for x in xs:
        P = [w * x + b for w, b in zip(w_ih, b_ih)]
        R = [w * h + b for w, b in zip(w_hh, b_hh)]
        r, z = sigmoid(P[0] + R[0]), sigmoid(P[1] + R[1])
        n = math.tanh(P[2] + r * R[2])
        steps.append(dict(x=x, h_prev=h, r=r, z=z, n=n, R_n=R[2]))
        h = (1 - z) * n + z * h
        steps[-1]["h"] = h
    dx, dW_ih, dW_hh = [0.0, 0.0], [0.0] * 3, [0.0] * 3
    db_ih, db_hh = [0.0] * 3, [0.0] * 3
    g = gn
    for t in (1, 0):
        s = steps[t]
        g += gs[t]
        da_n = g * (1 - s["z"]) * (1 - s["n"] ** 2)
        da_r = da_n * s["R_n"] * s["r"] * (1 - s["r"])
        da_z = g * (s["h_prev"] - s["n"]) * s["z"] * (1 - s["z"])
        dP = [da_r, da_z, da_n]
        dR = [da_r, da_z, da_n * s["r"]]
        dx[t] = sum(d * w for d, w in zip(dP, w_ih))
        for k in range(3):
            dW_ih[k] += dP[k] * s["x"]
            dW_hh[k] += dR[k] * s["h_prev"]
            db_ih[k] += dP[k]
            db_hh[k] += dR[k]
        g = sum(d * w for d, w in zip(dR, w_hh)) + g * s["z"]
    expected = {"dx": [[[dx[0]]], [[dx[1]]]], "dh0": [[g]], "dW_ih": [[w] for w in dW_ih],
                "dW_hh": [[w] for w in dW_hh], "db_ih": db_ih, "db_hh": db_hh}

    def arr(v):
        return np.array(v, dtype)

    forward, backward = functions(GRU, impl)
    h, cache = forward(arr([[[xs[0]]], [[xs[1]]]]), arr([[h0]]), arr([[w] for w in w_ih]),
                       arr([[w] for w in w_hh]), arr(b_ih), arr(b_hh))
    grads = backward(arr([[[gs[0]]], [[gs[1]]]]), cache, dh_n=arr([[gn]]))
    # float32: dx[1] is a small difference of order-1 terms, so an absolute part too
    rtol, atol = (1e-6, 1e-6) if dtype == np.float32 else (1e-13, 1e-14)
    assert_close(h, [[[steps[0]["h"]]], [[steps[1]["h"]]]], rtol, atol, err_msg="h")
    for name, value in expected.items():
        assert_close(getattr(grads, name), value, rtol, atol, err_msg=name)
