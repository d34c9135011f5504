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

    PyTorch's equations and gate order (r, z, n), for each step t::

        r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    {forward_parameters}
    {forward_options}

    {forward_returns_raises_see_also}

    Examples
    --------
    Batch-first input, checked against the pure-NumPy twin:

    >>> import numpy as np
    >>> import fastbptt
    >>> rng = np.random.default_rng(0)
    >>> B, T, I, H = 2, 5, 3, 4
    >>> x = rng.standard_normal((B, T, I)).astype(np.float32)      # batch-first
    >>> W_ih = rng.uniform(-0.5, 0.5, (3 * H, I)).astype(np.float32)
    >>> W_hh = rng.uniform(-0.5, 0.5, (3 * H, H)).astype(np.float32)
    >>> h, cache = fastbptt.gru_forward(x, None, W_ih, W_hh, batch_first=True)
    >>> h.shape
    (2, 5, 4)
    >>> ref, _ = fastbptt.reference.gru_forward(x, None, W_ih, W_hh, batch_first=True)
    >>> bool(np.allclose(h, ref, rtol=1e-4, atol=1e-5))
    True
    """
    return driver.forward(SPEC, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                          check_finite, checkpoint)


@dispatch("gru_backward")
@docs.fill(SPEC)
def gru_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time: the gradients of a loss through a GRU.

    ``db_ih`` and ``db_hh`` differ: ``b_hn`` sits inside the reset gate's product
    r * (W_hn h_{t-1} + b_hn), ``b_in`` outside it.

    {backward_sections}
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
                        transposed_step=form == "transposed", packed=form == "packed")
    return gates

