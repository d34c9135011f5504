"""GRU, forward and backward through time, in plain NumPy.

PyTorch's layout and gate order r, z, n: W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,).

    P_t = x_t W_ih^T + b_ih = [P_r P_z P_n]                (B, 3H)
    R_t = h_{t-1} W_hh^T + b_hh = [R_r R_z R_n]            (B, 3H)
    r = sigmoid(P_r + R_r),  z = sigmoid(P_z + R_z)         (B, H)
    n = tanh(P_n + r * R_n)                                 (the reset gate acts after W_hn)
    h_t = (1 - z) * n + z * h_{t-1}

Backward, with g = dL/dh_t arriving from the loss at step t and from step t+1:

    dn = g (1 - z),  dz = g (h_{t-1} - n)
    da_n = dn (1 - n^2),  da_r = da_n R_n r (1 - r),  da_z = dz z (1 - z)
    dP_t = [da_r, da_z, da_n]      dW_ih += dP_t^T x_t,      db_ih += sum_b dP_t,  dx_t = dP_t W_ih
    dR_t = [da_r, da_z, da_n r]    dW_hh += dR_t^T h_{t-1},  db_hh += sum_b dR_t
    g_{t-1} = dh_{t-1} + dR_t W_hh + g z

dP and dR differ in the n block, so db_ih != db_hh. With lengths, sequence b stops at
step lengths[b]: after it, its state is carried unchanged, its output is zero and its
dP, dR are zero, so g passes back through those steps untouched and nothing past the
length reaches a gradient.
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
from fastbptt.cells.spec import GRU as SPEC


class ReferenceGRUCache(CellCache):
    """What gru_backward needs from gru_forward. Opaque to callers but for h_n."""
    __slots__ = ("args", "h", "r", "z", "n", "R_n")

    def __init__(self, args, h, r, z, n, R_n):
        self.args = args   # validated CellArgs
        self.h = h         # (T, B, H) time-major states h_1..h_T; past a sequence's
        #                    length, its last state repeated
        self.r = r         # (T, B, H) each: the gates and R_n = h_{t-1} W_hn^T + b_hn
        self.z = z
        self.n = n
        self.R_n = R_n

    backend = "reference"

    @property
    def spec(self):
        return SPEC

    def step_back(self, t, d_states):
        """Through step t's recurrence only, for every sequence in full (no lengths):
        d_states, the gradients reaching step t's states ((..., B, H) each, leading
        dimensions broadcast), to (the gradient of the step's input pre-activations,
        which W_ih carries to x_t, and the gradients reaching step t-1's states)."""
        dP, _, g_prev = gru_backward_step(d_states[0], self, t)
        return dP, (g_prev,)

    def final_states(self):
        return (self.h[-1] if self.args.T else self.args.h0),


def _blocks(a, H):
    """The r, z, n column blocks of a (B, 3H) array."""
    return a[:, :H], a[:, H:2 * H], a[:, 2 * H:]


def gru_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False, lengths=None,
                check_finite=False,
                checkpoint=None):
    """Run a GRU over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first), h0 (B, H) or None for zeros,
    W_ih (3H, I), W_hh (3H, H), b_ih and b_hh (3H,) or both None (gates r, z, n);
    lengths (B,) ints in [0, T] or None (all T).
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), zero past each sequence's
    length, and a cache for gru_backward whose h_n is the final state.
    check_finite: raise ValueError if an argument holds NaN or Inf (x only inside the
    lengths); by default NaN and Inf propagate as IEEE arithmetic makes them.
    checkpoint: None, True or an int k, as for fastbptt.gru_forward: keep the state every
    k steps and recompute each segment in backward (fastbptt.cells.checkpoint); the same
    results to rounding.
    """
    args = check_forward_args(SPEC, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                              check_finite=check_finite)
    k = segment_length(checkpoint, args.T)
    if k is not None and not is_empty(args):   # bounded memory: fastbptt.cells.checkpoint
        return checkpoint_forward(args, k, _forward, _backward, "reference")
    return _forward(args)


def _forward(args):
    T, B, H = args.T, args.B, args.H
    mask = step_mask(args)
    xs = args.x.transpose(1, 0, 2) if args.batch_first else args.x   # (T, B, I)
    dtype = args.x.dtype
    h, r, z, n, R_n = (np.empty((T, B, H), dtype) for _ in range(5))
    h_prev = args.h0
    # an empty batch or state has nothing to compute at any step: skip the loop, so a
    # zero-size problem costs nothing whatever T is
    for t in range(T if B * H else 0):
        P_r, P_z, P_n = _blocks(xs[t] @ args.W_ih.T + args.b_ih, H)
        R_r, R_z, R_n[t] = _blocks(h_prev @ args.W_hh.T + args.b_hh, H)   # R_n kept
        r[t] = expit(P_r + R_r)
        z[t] = expit(P_z + R_z)
        n[t] = np.tanh(P_n + r[t] * R_n[t])
        h[t] = (1 - z[t]) * n[t] + z[t] * h_prev
        if mask is not None:
            h[t] = np.where(mask[t][:, None], h[t], h_prev)
        h_prev = h[t]
    out = h if mask is None else np.where(mask[:, :, None], h, 0)
    out = out.transpose(1, 0, 2) if args.batch_first else out
    # A copy: the caller may edit what it gets back, and backward must not see that.
    return out.copy(order="C"), ReferenceGRUCache(args, h, r, z, n, R_n)


def gru_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time.

    dh: dL/dh at every step, shaped like gru_forward's output, or None (many-to-one);
    dh_n: dL/dh_n (B, H), the gradient reaching the final state from outside, or None.
    Returns GRUGrads(dx, dh0, dW_ih, dW_hh, db_ih, db_hh).
    check_finite: raise ValueError if dh (inside the lengths) or dh_n holds NaN or Inf.
    """
    if isinstance(cache, CheckpointCache) and cache.spec is SPEC:
        return checkpoint_backward(dh, cache, (dh_n,), check_finite=check_finite)
    if not isinstance(cache, ReferenceGRUCache):
        raise TypeError(
            f"cache must come from fastbptt.reference.gru_forward, got {type(cache).__name__}"
        )
    dh, finals = check_backward_args(dh, (dh_n,), cache.args, check_finite=check_finite)
    return _backward(dh, cache, finals)


def _backward(dh, cache, finals):
    (dh_n,) = finals
    args = cache.args
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
    db_ih = np.zeros(3 * H, dtype)
    db_hh = np.zeros(3 * H, dtype)
    g = np.zeros((B, H), dtype) if dh_n is None else dh_n.copy()
    for t in reversed(range(T if B * H else 0)):   # as in forward
        if dhs is not None:
            g = g + (dhs[t] if mask is None else np.where(mask[t][:, None], dhs[t], 0))
        h_prev = cache.h[t - 1] if t > 0 else args.h0
        dP, dR, g = gru_backward_step(g, cache, t, None if mask is None else mask[t][:, None])
        dx[t] = dP @ args.W_ih
        dW_ih += dP.T @ xs[t]
        dW_hh += dR.T @ h_prev
        db_ih += dP.sum(axis=0)
        db_hh += dR.sum(axis=0)
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2)) if args.batch_first else dx
    if not args.has_bias:
        db_ih = db_hh = None
    return SPEC.grads(dx, g, dW_ih, dW_hh, db_ih, db_hh)


def gru_backward_step(g, cache, t, keep=None):
    """One step of gru_backward, through step t's recurrence only.

    g: dL/dh_t, the total gradient reaching h_t, (..., B, H): leading dimensions
    broadcast, so several vectors go back at once. keep: (B, 1) bool, the rows inside
    their length, or None.
    Returns (dP_t, dR_t, g_{t-1}): dP_t, dR_t (..., B, 3H) zero where not kept, and
    g_{t-1} = dR_t W_hh + g z (g itself where not kept), before the loss's own gradient
    at step t-1 is added.
    """
    args = cache.args
    h_prev = cache.h[t - 1] if t > 0 else args.h0
    r, z, n = cache.r[t], cache.z[t], cache.n[t]
    dn = g * (1 - z)
    dz = g * (h_prev - n)
    da_n = dn * (1 - n * n)
    da_r = da_n * cache.R_n[t] * r * (1 - r)
    da_z = dz * z * (1 - z)
    dP = np.concatenate([da_r, da_z, da_n], axis=-1)
    dR = np.concatenate([da_r, da_z, da_n * r], axis=-1)
    if keep is not None:
        # past its length a sequence's step is the identity: g passes through it
        dP = np.where(keep, dP, 0)
        dR = np.where(keep, dR, 0)
    g_next = dR @ args.W_hh + g * z
    g_prev = g_next if keep is None else np.where(keep, g_next, g)
    return dP, dR, g_prev
