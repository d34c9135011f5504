"""Vanilla (Elman) RNN, forward and backward through time, in plain NumPy.

    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, H)
    h_t = f(a_t)                                           f in tanh, relu, sigmoid, identity

Backward, with g_t = dL/dh_t arriving from the loss at step t and from step t+1:

    dA_t    = g_t * f'(a_t)                                (B, H)
    g_{t-1} = dh_{t-1} + dA_t W_hh
    dW_ih = sum_t dA_t^T x_t,  dW_hh = sum_t dA_t^T h_{t-1},  db = sum_t sum_b dA_t
    dx_t  = dA_t W_ih,         dh0 = g_0 carried past the first step

With lengths, sequence b stops at step lengths[b]: after it, its state is carried
unchanged (h_t = h_{t-1}), its output is zero and its dA is zero, so g passes back through
those steps untouched and nothing past the length reaches a gradient.
"""
import numpy as np
from scipy.special import expit

from fastbptt.cells import docs
from fastbptt.cells.spec import RNN as SPEC
from fastbptt.reference import _recurrence


def _activate(nonlinearity, a):
    if nonlinearity == "tanh":
        return np.tanh(a)
    if nonlinearity == "relu":
        return np.maximum(a, 0)
    if nonlinearity == "sigmoid":
        return expit(a)
    return a


def _derivative_from_output(nonlinearity, h):
    """f'(a) written through h = f(a); relu's derivative at 0 is 0, as in PyTorch."""
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "relu":
        return (h > 0).astype(h.dtype)
    if nonlinearity == "sigmoid":
        return h * (1 - h)
    return np.ones_like(h)


class ReferenceRNNCache(_recurrence.ReferenceCache):
    """What rnn_backward needs from rnn_forward. Opaque to callers but for h_n."""
    __slots__ = ("args", "h")
    spec = SPEC

    def __init__(self, args, h):
        self.args = args   # validated CellArgs
        self.h = h         # (T, B, H), time-major states, h[t] = h_{t+1} in the equations'
        #                    count; past a sequence's length, its last state repeated

    def step(self, t, d_states, keep=None):
        """rnn_backward_step in the time loop's terms (fastbptt.reference._recurrence):
        dP_t = dR_t = dA_t, both biases sit before f."""
        dA, g_prev = rnn_backward_step(d_states[0], self, t, keep)
        return dA, dA, (g_prev,)


@docs.fill(SPEC)
def rnn_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                batch_first=False, lengths=None, check_finite=False,
                checkpoint=None):
    """Run a vanilla RNN over a sequence, in plain NumPy, one step at a time.

    The specification of :func:`fastbptt.rnn_forward` (same signature and results to
    rounding); the equations are in this module's docstring.

    {reference_forward_parameters}
    nonlinearity : {"tanh", "relu", "sigmoid", "identity"}, default "tanh"
        f in the equations.
    {forward_options}

    {reference_forward_returns}
    """
    return _recurrence.forward(SPEC, _forward, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first,
                               lengths, check_finite, checkpoint, nonlinearity=nonlinearity)


def _step(args, x_t, h_prev):
    """a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,  h_t = f(a_t)."""
    a = x_t @ args.W_ih.T + args.b_ih + h_prev @ args.W_hh.T + args.b_hh
    return (_activate(args.nonlinearity, a),), ()


def _forward(args):
    out, (h,), _ = _recurrence.run_forward(args, _step)
    return out, ReferenceRNNCache(args, h)


@docs.fill(SPEC)
def rnn_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time through a vanilla RNN, in plain NumPy.

    The specification of :func:`fastbptt.rnn_backward`; db_ih equals db_hh.

    {reference_backward_sections}
    """
    return _recurrence.backward(SPEC, ReferenceRNNCache, dh, cache, (dh_n,), check_finite)


def rnn_backward_step(g, cache, t, keep=None):
    """One step of rnn_backward, through step t's recurrence only.

    g: dL/dh_t, the total gradient reaching h_t, (..., B, H): leading dimensions
    broadcast, so several vectors go back at once (gradient-flow diagnostics push an
    identity through). keep: (B, 1) bool, the rows inside their length, or None.
    Returns (dA_t, g_{t-1}): dA_t = g f'(a_t), zero where not kept, and
    g_{t-1} = dA_t W_hh (plus g itself where not kept: the step is the identity there),
    before the loss's own gradient at step t-1 is added.
    """
    dA = g * _derivative_from_output(cache.args.nonlinearity, cache.h[t])
    if keep is not None:
        # past its length a sequence's step is the identity: g passes through it
        dA = np.where(keep, dA, 0)
        g_skip = np.where(keep, 0, g)
    g_prev = dA @ cache.args.W_hh
    if keep is not None:
        g_prev = g_prev + g_skip
    return dA, g_prev
