"""Vanilla (Elman) RNN, compiled: the public functions and the calls of
fastbptt._kernels.rnn. The specification is fastbptt.reference.rnn; the loop around the
kernels is cells/driver.py.

    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, H)
    h_t = f(a_t)
"""

from fastbptt._kernels import rnn as _kernel
from fastbptt.cells import docs, driver, workspace
from fastbptt.cells.driver import scratch as _scratch
from fastbptt.cells.spec import RNN as SPEC
from fastbptt.runtime.backend import dispatch


@dispatch("rnn_forward")
@docs.fill(SPEC)
def rnn_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                batch_first=False, lengths=None, check_finite=False, checkpoint=None):
    """Run a vanilla RNN over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first, read without copying), h0 (B, H) or None
    for zeros, W_ih (H, I), W_hh (H, H), b_ih and b_hh (H,) or both None;
    nonlinearity "tanh", "relu", "sigmoid" or "identity". float32 or float64, chosen by x.
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), a new array, and an opaque
    cache for rnn_backward whose h_n is the final state (B, H).
    {forward_options}
    """
    return driver.forward(SPEC, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint, nonlinearity)


@dispatch("rnn_backward")
@docs.fill(SPEC)
def rnn_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time.

    {backward_arguments}
    Returns RNNGrads(dx, dh0, dW_ih, dW_hh, db_ih, db_hh), all new arrays.
    """
    return driver.backward(SPEC, dh, cache, (dh_n,), check_finite)


def run_forward_kernel(args, states, form):
    T, B, I, H = args.T, args.B, args.I, args.H
    (hbuf,) = states
    # The pre-activations of all steps, in x's row order. Time-major, that is the order of
    # hbuf[1:], so they are computed in place there (f is applied element by element) and
    # no T*B*H workspace is touched beside hbuf.
    P = (hbuf[1:].reshape(T * B, H) if not args.batch_first
         else workspace.empty((T * B, H), args.dtype))
    _kernel.rnn_forward(X=args.x.reshape(T * B, I),
                        bias=SPEC.bias_rows(args.b_ih, args.b_hh, H), P=P, hbuf=hbuf,
                        scratch=_scratch(H * B, args.dtype, form), args=args,
                        transposed_step=form == "transposed")
    return None


def run_backward_kernel(args, X, states, kept, dh, carries, work, form):
    (hbuf,), (carry,) = states, carries
    _kernel.rnn_backward(X=X, hbuf=hbuf, dh=dh, carry=carry, args=args, work=work,
                         transposed_step=form == "transposed")
