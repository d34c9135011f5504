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
    """Run a vanilla (Elman) RNN over a sequence.

    For each step t, with f the nonlinearity::

        a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, H)
        h_t = f(a_t)

    {forward_parameters}
    nonlinearity : {"tanh", "relu", "sigmoid", "identity"}, default "tanh"
        f above ("tanh" and "relu" are PyTorch's).
    {forward_options}

    {forward_returns_raises_see_also}

    Examples
    --------
    Forward and backward in float32, without biases:

    >>> import numpy as np
    >>> import fastbptt
    >>> rng = np.random.default_rng(0)
    >>> T, B, I, H = 5, 2, 3, 4
    >>> x = rng.standard_normal((T, B, I)).astype(np.float32)
    >>> W_ih = rng.uniform(-0.5, 0.5, (H, I)).astype(np.float32)
    >>> W_hh = rng.uniform(-0.5, 0.5, (H, H)).astype(np.float32)
    >>> h, cache = fastbptt.rnn_forward(x, None, W_ih, W_hh)
    >>> h.shape, h.dtype, cache.h_n.shape
    ((5, 2, 4), dtype('float32'), (2, 4))
    >>> grads = fastbptt.rnn_backward(np.ones_like(h), cache)
    >>> grads.dW_hh.shape, grads.db_ih is None
    ((4, 4), True)
    """
    return driver.forward(SPEC, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint, nonlinearity)


@dispatch("rnn_backward")
@docs.fill(SPEC)
def rnn_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time: the gradients of a loss through a vanilla RNN.

    ``db_ih`` equals ``db_hh``: both biases are added to the same pre-activation.

    {backward_sections}
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
                        transposed_step=form == "transposed", packed=form == "packed")
    return None

