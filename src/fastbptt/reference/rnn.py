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

from fastbptt.cells.args import (
    check_backward_args,
    check_forward_args,
    is_empty,
    step_mask,
    x_for_weight_grads,
)
from fastbptt.cells.cache import CellCache
from fastbptt.cells.checkpoint import (
    CheckpointCache,
    checkpoint_backward,
    checkpoint_forward,
    segment_length,
)
from fastbptt.cells.spec import RNN as SPEC


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


class ReferenceRNNCache(CellCache):
    """What rnn_backward needs from rnn_forward. Opaque to callers but for h_n."""
    __slots__ = ("args", "h")

    def __init__(self, args, h):
        self.args = args   # validated CellArgs
        self.h = h         # (T, B, H), time-major states, h[t] = h_{t+1} in the equations'
        #                    count; past a sequence's length, its last state repeated

    backend = "reference"

    @property
    def spec(self):
        return SPEC

    def step_back(self, t, d_states):
        """Through step t's recurrence only, for every sequence in full (no lengths):
        d_states, the gradients reaching step t's states ((..., B, H) each, leading
        dimensions broadcast), to (the gradient of the step's input pre-activations,
        which W_ih carries to x_t, and the gradients reaching step t-1's states)."""
        dA, g_prev = rnn_backward_step(d_states[0], self, t)
        return dA, (g_prev,)

    def final_states(self):
        return (self.h[-1] if self.args.T else self.args.h0),


def rnn_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                batch_first=False, lengths=None, check_finite=False,
                checkpoint=None):
    """Run a vanilla RNN over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first), h0 (B, H) or None for zeros,
    W_ih (H, I), W_hh (H, H), b_ih and b_hh (H,) or both None; lengths (B,) ints in
    [0, T] or None (all T).
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), zero past each sequence's
    length, and a cache for rnn_backward whose h_n is the final state.
    check_finite: raise ValueError if an argument holds NaN or Inf (x only inside the
    lengths); by default NaN and Inf propagate as IEEE arithmetic makes them.
    checkpoint: None, True or an int k, as for fastbptt.rnn_forward: keep the state every
    k steps and recompute each segment in backward (fastbptt.cells.checkpoint); the same
    results to rounding.
    """
    args = check_forward_args(SPEC, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                              check_finite=check_finite, nonlinearity=nonlinearity)
    k = segment_length(checkpoint, args.T)
    if k is not None and not is_empty(args):   # bounded memory: fastbptt.cells.checkpoint
        return checkpoint_forward(args, k, _forward, _backward, "reference")
    return _forward(args)


def _forward(args):
    mask = step_mask(args)
    xs = args.x.transpose(1, 0, 2) if args.batch_first else args.x   # (T, B, I)
    h = np.empty((args.T, args.B, args.H), args.x.dtype)
    h_prev = args.h0
    # an empty batch or state has nothing to compute at any step: skip the loop, so a
    # zero-size problem costs nothing whatever T is
    for t in range(args.T if args.B * args.H else 0):
        a = xs[t] @ args.W_ih.T + args.b_ih + h_prev @ args.W_hh.T + args.b_hh
        h[t] = _activate(args.nonlinearity, a)
        if mask is not None:
            h[t] = np.where(mask[t][:, None], h[t], h_prev)
        h_prev = h[t]
    out = h if mask is None else np.where(mask[:, :, None], h, 0)
    out = out.transpose(1, 0, 2) if args.batch_first else out
    # A copy: the caller may edit what it gets back, and backward must not see that.
    return out.copy(order="C"), ReferenceRNNCache(args, h)


def rnn_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time.

    dh: dL/dh at every step, shaped like rnn_forward's output, or None (many-to-one);
    dh_n: dL/dh_n (B, H), the gradient reaching the final state from outside, or None.
    Returns RNNGrads(dx, dh0, dW_ih, dW_hh, db_ih, db_hh).
    check_finite: raise ValueError if dh (inside the lengths) or dh_n holds NaN or Inf.
    """
    if isinstance(cache, CheckpointCache) and cache.spec is SPEC:
        return checkpoint_backward(dh, cache, (dh_n,), check_finite=check_finite)
    if not isinstance(cache, ReferenceRNNCache):
        raise TypeError(
            f"cache must come from fastbptt.reference.rnn_forward, got {type(cache).__name__}"
        )
    dh, finals = check_backward_args(dh, (dh_n,), cache.args, check_finite=check_finite)
    return _backward(dh, cache, finals)


def _backward(dh, cache, finals):
    (dh_n,) = finals
    args, h = cache.args, cache.h
    T, B, H = args.T, args.B, args.H
    dtype = args.x.dtype
    mask = step_mask(args)
    # x with its padding zeroed: 0 * NaN in dA^T x must not reach dW_ih
    x = x_for_weight_grads(args)
    xs = x.transpose(1, 0, 2) if args.batch_first else x
    dhs = None if dh is None else (dh.transpose(1, 0, 2) if args.batch_first else dh)

    dx = np.zeros_like(xs)
    dW_ih = np.zeros_like(args.W_ih)
    dW_hh = np.zeros_like(args.W_hh)
    db = np.zeros(H, dtype)
    g = np.zeros((B, H), dtype) if dh_n is None else dh_n.copy()
    for t in reversed(range(T if B * H else 0)):   # as in forward
        if dhs is not None:
            g = g + (dhs[t] if mask is None else np.where(mask[t][:, None], dhs[t], 0))
        h_prev = h[t - 1] if t > 0 else args.h0
        dA, g_prev = rnn_backward_step(g, cache, t, None if mask is None else mask[t][:, None])
        dx[t] = dA @ args.W_ih
        dW_ih += dA.T @ xs[t]
        dW_hh += dA.T @ h_prev
        db += dA.sum(axis=0)
        g = g_prev
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2)) if args.batch_first else dx
    db_ih, db_hh = SPEC.split_db(db, H) if args.has_bias else (None, None)
    return SPEC.grads(dx, g, dW_ih, dW_hh, db_ih, db_hh)


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
