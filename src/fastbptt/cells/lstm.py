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
from fastbptt.cells.spec import LSTMP as PROJECTED
from fastbptt.runtime.backend import dispatch


@dispatch("lstm_forward")
@docs.fill(SPEC)
def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False,
                 lengths=None, check_finite=False, checkpoint=None, *, W_hr=None):
    """Run an LSTM over a sequence.

    PyTorch's equations and gate order (i, f, g, o), for each step t::

        [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh   (B, 4H), split in 4
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    {forward_parameters}
    {forward_options}
    W_hr : ndarray, shape (P, H), or None, keyword-only
        A projection of the hidden state (LSTMP, torch's ``proj_size``; 0 < P < H):
        ``h_t = (o * tanh(c_t)) W_hr^T`` (B, P). Then ``h0``, the output and
        ``cache.h_n`` are P wide, ``W_hh`` is (4H, P), ``c0`` and ``cache.c_n`` stay
        (B, H), and :func:`lstm_backward` returns :class:`LSTMPGrads` (with ``dW_hr``).
        None: no projection.

    {forward_returns_raises_see_also}

    Examples
    --------
    Two sequences of lengths 5 and 3, and a loss on the final hidden state alone
    (many-to-one):

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
    if W_hr is not None:
        return _projected().forward(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh, batch_first,
                                    lengths, check_finite, checkpoint)
    return driver.forward(SPEC, x, (h0, c0), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint)


@dispatch("lstm_backward")
@docs.fill(SPEC)
def lstm_backward(dh, cache, dh_n=None, dc_n=None, check_finite=False):
    """Backpropagate through time: the gradients of a loss through an LSTM.

    ``db_ih`` equals ``db_hh``: both biases are added to the same gate pre-activations.
    After a forward with ``W_hr`` the record is an :class:`LSTMPGrads`: the same fields,
    with ``dh0`` (B, P) and ``dW_hh`` (4H, P), then ``dW_hr`` (P, H).

    {backward_sections}
    """
    # a CompiledCache is never the projected LSTM's (that is a ProjectedCache, or an
    # Empty/CheckpointCache): the test first spares the common call the spec property
    if type(cache) is not driver.CompiledCache and getattr(cache, "spec", None) is PROJECTED:
        return _projected().backward(dh, cache, (dh_n, dc_n), check_finite)
    return driver.backward(SPEC, dh, cache, (dh_n, dc_n), check_finite)


def _projected():
    """The projected LSTM's compiled path (cells/lstmp.py), imported on first use: a
    plain LSTM call never pays for it."""
    from fastbptt.cells import lstmp
    return lstmp


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

