"""LSTM, compiled: the public functions and the calls of fastbptt._kernels.lstm. The
specification is fastbptt.reference.lstm; the loop around the kernels is cells/driver.py.
PyTorch's gates i, f, g, o:

    [i f g o] = [sigmoid sigmoid tanh sigmoid](x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    c_t = f * c_{t-1} + i * g                                   (B, H)
    h_t = o * tanh(c_t)
"""

from fastbptt._kernels import lstm as _kernel
from fastbptt.cells import docs, driver, workspace
from fastbptt.cells.driver import scratch as _scratch
from fastbptt.cells.spec import LSTM as SPEC
from fastbptt.runtime.backend import dispatch


@dispatch("lstm_forward")
@docs.fill(SPEC)
def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False,
                 lengths=None, check_finite=False, checkpoint=None):
    """Run an LSTM over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first, read without copying), h0 and c0 (B, H)
    or None for zeros, W_ih (4H, I), W_hh (4H, H), b_ih and b_hh (4H,) or both None; gate
    blocks i, f, g, o as in PyTorch. float32 or float64, chosen by x.
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), a new array, and an opaque
    cache for lstm_backward whose h_n and c_n are the final states (B, H).
    {forward_options}
    """
    return driver.forward(SPEC, x, (h0, c0), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint)


@dispatch("lstm_backward")
@docs.fill(SPEC)
def lstm_backward(dh, cache, dh_n=None, dc_n=None, check_finite=False):
    """Backpropagate through time.

    {backward_arguments}
    Returns LSTMGrads(dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh), all new arrays.
    """
    return driver.backward(SPEC, dh, cache, (dh_n, dc_n), check_finite)


def run_forward_kernel(args, states, form):
    T, B, I, H = args.T, args.B, args.I, args.H
    hbuf, cbuf = states
    gates = workspace.empty((T * B, 4 * H), args.dtype)   # activated [i f g o] per step
    _kernel.lstm_forward(X=args.x.reshape(T * B, I),
                         bias=SPEC.bias_rows(args.b_ih, args.b_hh, H), gates=gates,
                         hbuf=hbuf, cbuf=cbuf, scratch=_scratch(4 * H * B, args.dtype, form),
                         args=args, transposed_step=form == "transposed")
    return gates


def run_backward_kernel(args, X, states, gates, dh, carries, work, form):
    (hbuf, cbuf), (carry_h, carry_c) = states, carries
    _kernel.lstm_backward(X=X, gates=gates, hbuf=hbuf, cbuf=cbuf, dh=dh, carry_h=carry_h,
                          carry_c=carry_c, args=args, work=work,
                          transposed_step=form == "transposed")
