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

    PyTorch's equations and gate order (i, f, g, o), for each step t::

        [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh   (B, 4H), split in 4
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    Parameters
    ----------
    {x_parameter}
    h0, c0 : ndarray, shape (B, H), or None
        The initial hidden and cell states; None means zeros.
    W_ih : ndarray, shape (4H, I)
        Input-to-hidden weights, gate blocks i, f, g, o.
    W_hh : ndarray, shape (4H, H)
        Hidden-to-hidden weights, the same gate blocks.
    {bias_parameters}
    {forward_options}

    Returns
    -------
    {h_return}
    cache : object
        Opaque, for :func:`lstm_backward`. ``cache.h_n`` and ``cache.c_n`` are the final
        states (B, H). It refers to ``x`` and the weights: do not change them in place
        before the backward call.

    {forward_raises_see_also}

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> rng = np.random.default_rng(0)
    >>> T, B, I, H = 5, 2, 3, 4
    >>> x = rng.standard_normal((T, B, I))
    >>> W_ih, W_hh = rng.uniform(-0.5, 0.5, (4 * H, I)), rng.uniform(-0.5, 0.5, (4 * H, H))
    >>> b = np.zeros(4 * H)
    >>> h, cache = fastbptt.lstm_forward(x, None, None, W_ih, W_hh, b, b, lengths=[5, 3])
    >>> h.shape, cache.c_n.shape
    ((5, 2, 4), (2, 4))
    >>> bool(np.all(h[3:, 1] == 0))      # sequence 1 ended after 3 steps
    True
    >>> grads = fastbptt.lstm_backward(None, cache, dh_n=np.ones((B, H)))  # many-to-one
    >>> grads.dx.shape, grads.dc0.shape
    ((5, 2, 3), (2, 4))
    """
    return driver.forward(SPEC, x, (h0, c0), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint)


@dispatch("lstm_backward")
@docs.fill(SPEC)
def lstm_backward(dh, cache, dh_n=None, dc_n=None, check_finite=False):
    """Backpropagate through time: the gradients of a loss through an LSTM.

    Parameters
    ----------
    {backward_arguments}

    Returns
    -------
    grads : LSTMGrads
        A named tuple of new arrays of the forward's dtype: ``dx, dh0, dc0, dW_ih, dW_hh,
        db_ih, db_hh``. The gradients of the weights and biases are summed over all steps;
        ``db_ih`` and ``db_hh`` are None when the forward had no biases. ``db_ih`` equals
        ``db_hh``.

    {backward_raises_see_also}
    """
    return driver.backward(SPEC, dh, cache, (dh_n, dc_n), check_finite)


def run_forward_kernel(args, states, form):
    T, B, I, H = args.T, args.B, args.I, args.H
    hbuf, cbuf = states
    gates = workspace.empty((T * B, 4 * H), args.dtype)   # activated [i f g o] per step
    _kernel.lstm_forward(X=args.x.reshape(T * B, I),
                         bias=SPEC.bias_rows(args.b_ih, args.b_hh, H), gates=gates,
                         hbuf=hbuf, cbuf=cbuf, scratch=_scratch(4 * H * B, args.dtype, form),
                         args=args, transposed_step=form == "transposed",
                         packed=form == "packed")
    return gates

