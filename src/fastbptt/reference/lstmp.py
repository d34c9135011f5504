"""The LSTM with a projection (LSTMP; torch's proj_size), in plain NumPy: what
fastbptt.reference.lstm_forward / lstm_backward run when W_hr is given. The cell is the
plain LSTM's (reference/lstm.py); its output is projected to P < H features:

    z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh     (B, 4H), W_hh (4H, P), [i f g o]
    c_t = f c_{t-1} + i g,   m_t = o tanh(c_t)           (B, H)
    h_t = m_t W_hr^T                                     (B, P), W_hr (P, H)

Backward, with dH_t = dL/dh_t (the loss's dh_t plus what step t+1 sends back):

    dm_t = dH_t W_hr                                     (B, H)
    dz_t, dc_{t-1} from dm_t and dc_t through the cell, as the plain LSTM's from its dh_t
    dh_{t-1} = dz_t W_hh                                 (B, P)
    dW_hr = sum_t dH_t^T m_t (P, H);  dW_hh = sum_t dz_t^T h_{t-1} (4H, P);
    dW_ih = sum_t dz_t^T x_t;  db = sum_t sum_b dz_t;  dx_t = dz_t W_ih

With lengths, past lengths[b] a step is the identity on h and c, the output is zero and
m_t is zero (so nothing there reaches dW_hr), dz is zero and both gradients pass back
unchanged. The argument checks are cells/projection.py's.
"""
import numpy as np

from fastbptt.cells import args as _cellargs
from fastbptt.cells import checkpoint as _checkpoint
from fastbptt.cells import projection
from fastbptt.cells.cache import CellCache
from fastbptt.cells.spec import LSTMP as SPEC
from fastbptt.reference.lstm import _step, lstm_backward_step  # the plain cell's (its h is m)


class ReferenceProjectedCache(CellCache):
    """What the projected backward needs from its forward; opaque but for h_n (B, P) and
    c_n (B, H)."""
    __slots__ = ("args", "gates", "h", "c", "m")
    backend = "reference"
    spec = SPEC

    def __init__(self, args, gates, h, c, m):
        self.args = args     # validated ProjArgs
        self.gates = gates   # (T, B, 4H) activated gates [i f g o], time-major
        self.h = h           # (T, B, P) h[t] = h_{t+1} in the equations' count
        self.c = c           # (T, B, H)
        self.m = m           # (T, B, H) o tanh(c_t), zero past a sequence's length

    def final_states(self):
        if not self.args.T:
            return self.args.states
        return (self.h[-1], self.c[-1])


def forward(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh, batch_first, lengths, check_finite,
            checkpoint):
    """The reference projected forward: validate, then run plainly or in checkpointed
    segments; returns (h (T, B, P) or (B, T, P), cache)."""
    args = projection.check_forward_args(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh,
                                         batch_first, lengths, check_finite=check_finite)
    k = _checkpoint.segment_length(checkpoint, args.T)
    if k is not None and not projection.is_empty(args):
        return _checkpoint.checkpoint_forward(args, k, run_forward, run_backward,
                                              "reference")
    return run_forward(args)


def backward(dh, cache, finals, check_finite):
    """The reference projected backward; returns LSTMPGrads."""
    if isinstance(cache, _checkpoint.CheckpointCache):
        return _checkpoint.checkpoint_backward(dh, cache, finals, check_finite=check_finite,
                                               check_args=projection.check_backward_args)
    dh, finals = projection.check_backward_args(dh, finals, cache.args,
                                                check_finite=check_finite)
    return run_backward(dh, cache, finals)


def run_forward(args):
    """The forward time loop over validated ProjArgs: (h, ReferenceProjectedCache)."""
    T, B, H, P, dtype = args.T, args.B, args.H, args.P, args.dtype
    mask = _cellargs.step_mask(args)   # (T, B) or None
    xs = args.x.transpose(1, 0, 2) if args.batch_first else args.x   # (T, B, I)
    h = np.empty((T, B, P), dtype)
    c = np.empty((T, B, H), dtype)
    m = np.empty((T, B, H), dtype)
    gates = np.empty((T, B, 4 * H), dtype)
    h_prev, c_prev = args.h0, args.c0
    for t in range(T if B else 0):
        (m_t, c_t), (gates[t],) = _step(args, xs[t], h_prev, c_prev)
        h_t = m_t @ args.W_hr.T
        if mask is not None:
            keep = mask[t][:, None]
            h_t, c_t = np.where(keep, h_t, h_prev), np.where(keep, c_t, c_prev)
            m_t = np.where(keep, m_t, 0)
        h[t], c[t], m[t] = h_t, c_t, m_t
        h_prev, c_prev = h[t], c[t]
    out = h if mask is None else np.where(mask[:, :, None], h, 0)
    out = out.transpose(1, 0, 2) if args.batch_first else out
    return out.copy(order="C"), ReferenceProjectedCache(args, gates, h, c, m)


def run_backward(dh, cache, finals):
    """The backward time loop over validated arguments: LSTMPGrads."""
    args = cache.args
    T, B, dtype = args.T, args.B, args.dtype
    mask = _cellargs.step_mask(args)
    x = _cellargs.x_for_weight_grads(args)
    xs = x.transpose(1, 0, 2) if args.batch_first else x
    dhs = None if dh is None else (dh.transpose(1, 0, 2) if args.batch_first else dh)
    dx = np.zeros_like(xs)
    dW_ih, dW_hh = np.zeros_like(args.W_ih), np.zeros_like(args.W_hh)
    dW_hr = np.zeros_like(args.W_hr)
    db = np.zeros(4 * args.H, dtype)
    dh_carry, dc_carry = (np.zeros((B, n), dtype) if f is None else f.copy()
                          for f, n in zip(finals, args.state_sizes))
    for t in reversed(range(T if B else 0)):
        keep = None if mask is None else mask[t][:, None]   # (B, 1)
        dH = dh_carry if dhs is None else dh_carry + dhs[t]
        if keep is not None:
            dH = np.where(keep, dH, 0)   # an ended step: nothing reaches h_t's products
        dW_hr += dH.T @ cache.m[t]
        dm = dH @ args.W_hr
        dz, _, dc_prev = lstm_backward_step(dm, dc_carry, cache, t)
        if keep is not None:
            dz = np.where(keep, dz, 0)
            dc_prev = np.where(keep, dc_prev, dc_carry)
        dh_prev = dz @ args.W_hh
        if keep is not None:
            dh_prev = np.where(keep, dh_prev, dh_carry)
        h_prev = cache.h[t - 1] if t > 0 else args.h0
        dx[t] = dz @ args.W_ih
        dW_ih += dz.T @ xs[t]
        dW_hh += dz.T @ h_prev
        db += dz.sum(axis=0)
        dh_carry, dc_carry = dh_prev, dc_prev
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2)) if args.batch_first else dx
    db_ih, db_hh = (db, db.copy()) if args.has_bias else (None, None)
    return SPEC.grads(dx, dh_carry, dc_carry, dW_ih, dW_hh, db_ih, db_hh, dW_hr)
