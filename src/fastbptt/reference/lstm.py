"""LSTM, forward and backward through time, in plain NumPy. PyTorch's gate order i, f, g, o:

    z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, 4H), blocks [i f g o]
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
    c_t = f c_{t-1} + i g
    h_t = o tanh(c_t)                                      (B, H)

Backward, with dh_t = dL/dh_t (from the loss at step t and from step t+1) and
dc_t = dL/dc_t arriving from step t+1:

    dc      = dc_t + dh_t o (1 - tanh(c_t)^2)              the total dL/dc_t
    dz_i = dc g i (1 - i),  dz_f = dc c_{t-1} f (1 - f),  dz_g = dc i (1 - g^2),
    dz_o = dh_t tanh(c_t) o (1 - o)                        dz_t (B, 4H)
    dh_{t-1} = dz_t W_hh (+ the loss's gradient at t-1),  dc_{t-1} = dc f
    dW_ih = sum_t dz_t^T x_t,  dW_hh = sum_t dz_t^T h_{t-1},  db = sum_t sum_b dz_t
    dx_t  = dz_t W_ih;  dh0 and dc0 are the gradients carried past the first step

With lengths, sequence b stops at step lengths[b]: after it, its state (h and c) is
carried unchanged, its output is zero and its dz is zero, so both gradients pass back
through those steps untouched and nothing past the length reaches a gradient.
"""
import numpy as np
from scipy.special import expit

from fastbptt.cells import docs
from fastbptt.cells.spec import LSTM as SPEC
from fastbptt.reference import _recurrence


class ReferenceLSTMCache(_recurrence.ReferenceCache):
    """What lstm_backward needs from lstm_forward. Opaque to callers but for h_n and c_n."""
    __slots__ = ("args", "gates", "h", "c")
    spec = SPEC

    def __init__(self, args, gates, h, c):
        self.args = args     # validated CellArgs
        self.gates = gates   # (T, B, 4H) activated gates [i f g o], time-major
        self.h = h           # (T, B, H) time-major states, h[t] = h_{t+1} in the
        self.c = c           # equations' count; past a sequence's length, its last state

    def step(self, t, d_states, keep=None):
        """lstm_backward_step in the time loop's terms (fastbptt.reference._recurrence):
        dP_t = dR_t = dz_t, both biases sit before the gates."""
        dz, dh_prev, dc_prev = lstm_backward_step(d_states[0], d_states[1], self, t, keep)
        return dz, dz, (dh_prev, dc_prev)


@docs.fill(SPEC)
def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False,
                 lengths=None, check_finite=False, checkpoint=None, *, W_hr=None):
    """Run an LSTM over a sequence, in plain NumPy, one step at a time.

    The specification of :func:`fastbptt.lstm_forward` (same signature and results to
    rounding); the equations are in this module's docstring.

    {reference_forward_parameters}
    {forward_options}
    W_hr : ndarray, shape (P, H), or None, keyword-only
        The projection h_t = (o tanh(c_t)) W_hr^T, 0 < P < H (reference/lstmp.py); then
        h0 is (B, P) and W_hh (4H, P). None: no projection.

    {reference_forward_returns}
    """
    if W_hr is not None:
        return _projected().forward(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh, batch_first,
                                    lengths, check_finite, checkpoint)
    return _recurrence.forward(SPEC, _forward, x, (h0, c0), W_ih, W_hh, b_ih, b_hh,
                               batch_first, lengths, check_finite, checkpoint)


def _step(args, x_t, h_prev, c_prev):
    """z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (B, 4H), the gates [i f g o] from
    it, c_t = f c_{t-1} + i g, h_t = o tanh(c_t); the activated gates are kept."""
    z = x_t @ args.W_ih.T + args.b_ih + h_prev @ args.W_hh.T + args.b_hh
    i, f, g, o = np.split(z, 4, axis=1)
    i, f, g, o = expit(i), expit(f), np.tanh(g), expit(o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (h, c), (np.concatenate([i, f, g, o], axis=1),)


def _forward(args):
    out, (h, c), (gates,) = _recurrence.run_forward(args, _step, kept_gates=(4,))
    return out, ReferenceLSTMCache(args, gates, h, c)


@docs.fill(SPEC)
def lstm_backward(dh, cache, dh_n=None, dc_n=None, check_finite=False):
    """Backpropagate through time through an LSTM, in plain NumPy.

    The specification of :func:`fastbptt.lstm_backward`; db_ih equals db_hh. After a
    forward with ``W_hr``, an LSTMPGrads (``dW_hr`` last).

    {reference_backward_sections}
    """
    if getattr(cache, "spec", None) is _projected().SPEC:
        return _projected().backward(dh, cache, (dh_n, dc_n), check_finite)
    return _recurrence.backward(SPEC, ReferenceLSTMCache, dh, cache, (dh_n, dc_n),
                                check_finite)


def lstm_backward_step(dh, dc, cache, t, keep=None):
    """One step of lstm_backward, through step t's recurrence only.

    dh: dL/dh_t, the total gradient reaching h_t; dc: dL/dc_t arriving from step t+1;
    both (..., B, H): leading dimensions broadcast, so several vectors go back at once.
    keep: (B, 1) bool, the rows inside their length, or None.
    Returns (dz_t, dh_{t-1}, dc_{t-1}): dz_t (..., B, 4H) zero where not kept,
    dh_{t-1} = dz_t W_hh and dc_{t-1} = dc f (both passed through unchanged where not
    kept), before the loss's own gradient at step t-1 is added.
    """
    args = cache.args
    c_prev = cache.c[t - 1] if t > 0 else args.c0
    i, f, g, o = np.split(cache.gates[t], 4, axis=1)
    tc = np.tanh(cache.c[t])
    dc_total = dc + dh * o * (1 - tc * tc)
    dz = np.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f),
                         dc_total * i * (1 - g * g), dh * tc * o * (1 - o)], axis=-1)
    dc_prev = dc_total * f
    if keep is not None:
        # past its length a sequence's step is the identity: both gradients pass
        dz = np.where(keep, dz, 0)
        dc_prev = np.where(keep, dc_prev, dc)
        dh_skip = np.where(keep, 0, dh)
    dh_prev = dz @ args.W_hh
    if keep is not None:
        dh_prev = dh_prev + dh_skip
    return dz, dh_prev, dc_prev


def _projected():
    """The projected LSTM (reference/lstmp.py), which builds on this module's cell."""
    from fastbptt.reference import lstmp
    return lstmp
