"""GRU, compiled: the public functions and the calls of fastbptt._kernels.gru. The
specification is fastbptt.reference.gru; the loop around the kernels is cells/driver.py.
PyTorch's gates r, z, n:

    r = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)        (B, H)
    z = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
    n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}
"""
import numpy as np

from fastbptt._kernels import gru as _kernel
from fastbptt.cells import docs, driver, workspace
from fastbptt.cells.driver import scratch as _scratch
from fastbptt.cells.spec import GRU as SPEC
from fastbptt.runtime.backend import dispatch


@dispatch("gru_forward")
@docs.fill(SPEC)
def gru_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False, lengths=None,
                check_finite=False, checkpoint=None):
    """Run a GRU over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first, read without copying), h0 (B, H) or None
    for zeros, W_ih (3H, I), W_hh (3H, H), b_ih and b_hh (3H,) or both None (gate blocks
    r, z, n). float32 or float64, chosen by x.
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), a new array, and an opaque
    cache for gru_backward whose h_n is the final state (B, H).
    {forward_options}
    """
    return driver.forward(SPEC, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint)


@dispatch("gru_backward")
@docs.fill(SPEC)
def gru_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time.

    {backward_arguments}
    Returns GRUGrads(dx, dh0, dW_ih, dW_hh, db_ih, db_hh), all new arrays; db_ih and
    db_hh are None when forward had no biases.
    """
    return driver.backward(SPEC, dh, cache, (dh_n,), check_finite)


def run_forward_kernel(args, states, form):
    T, B, I, H = args.T, args.B, args.I, args.H
    (hbuf,) = states
    gates = workspace.empty((T * B, 4 * H), args.dtype)   # [r z n R_n] per step
    _kernel.gru_forward(X=args.x.reshape(T * B, I),
                        bias=SPEC.bias_rows(args.b_ih, args.b_hh, H), gates=gates,
                        hbuf=hbuf, R=np.empty((B, 3 * H), args.dtype),
                        scratch=_scratch(3 * H * B, args.dtype, form), args=args,
                        transposed_step=form == "transposed")
    return gates


def run_backward_kernel(args, X, states, gates, dh, carries, work, form):
    (hbuf,), (carry,) = states, carries
    _kernel.gru_backward(X=X, hbuf=hbuf, gates=gates, dh=dh, carry=carry, args=args,
                         work=work, transposed_step=form == "transposed")
