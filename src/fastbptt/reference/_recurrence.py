"""What the reference cells share around their equations: argument checks, the
checkpoint option, the time loop and lengths masking, and the batched weight gradients.

Each cell module (rnn.py, lstm.py, gru.py) states only its own math, as two functions:

    step(args, x_t, *states_prev) -> (states_t, kept_t)
        one forward step: x_t (B, I), the states at t-1 (B, H) each in spec.states
        order; returns the states at t and what backward needs beside them (activated
        gates, ...), each (B, k*H) for the k of the cell's kept_gates.
    cache.step(t, d_states, keep) -> (dP_t, dR_t, d_states_prev)
        one backward step through step t's recurrence: d_states, the total gradients
        reaching the states at t; returns the gradients of the step's input
        pre-activations dP_t (B, G*H) (x_t W_ih^T + b_ih) and of its recurrent ones
        dR_t (B, G*H) (h_{t-1} W_hh^T + b_hh; the same array as dP_t where the two are
        summed before any gate, as in the RNN and the LSTM), and the gradients reaching
        the states at t-1.

The loops here do the rest. With lengths, sequence b stops at step lengths[b]: after it
its states are carried unchanged and its output is zero (forward), and cache.step makes
its dP, dR zero and passes its state gradients through (backward). Then

    dx_t = dP_t W_ih,  dW_ih = sum_t dP_t^T x_t,  dW_hh = sum_t dR_t^T h_{t-1},
    db_ih = sum_t sum_b dP_t,  db_hh = sum_t sum_b dR_t

(x with its padding zeroed: 0 * NaN in dP^T x must not reach dW_ih), and the initial
states' gradients are the ones carried past the first step.

Pure Python and NumPy: it imports the argument checks and the checkpoint loop, which
import nothing compiled (the import-linter contract in pyproject.toml).
"""
import numpy as np

from fastbptt.cells import args as _cellargs
from fastbptt.cells import checkpoint as _checkpoint
from fastbptt.cells.cache import CellCache


class ReferenceCache(CellCache):
    """Base of the reference caches. A subclass sets `spec`, keeps `args` (the validated
    CellArgs) and one (T, B, H) time-major array per state, named as in spec.states
    (h[t] = h_{t+1} in the equations' count; past a sequence's length its last state
    repeated), and defines `step` (see the module docstring)."""
    __slots__ = ()
    backend = "reference"
    spec = None

    def step(self, t, d_states, keep=None):
        raise NotImplementedError

    def step_back(self, t, d_states):
        """Through step t's recurrence only, for every sequence in full (no lengths):
        d_states, the gradients reaching step t's states ((..., B, H) each, leading
        dimensions broadcast), to (the gradient of the step's input pre-activations,
        which W_ih carries to x_t, and the gradients reaching step t-1's states)."""
        dP, _, d_prev = self.step(t, d_states)
        return dP, d_prev

    def final_states(self):
        if not self.args.T:
            return self.args.states
        return tuple(getattr(self, name)[-1] for name in self.spec.states)


def forward(spec, run, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
            check_finite, checkpoint, **options):
    """A reference forward function: validate, then run(args) -> (h, cache), plainly or
    in checkpointed segments (fastbptt.cells.checkpoint)."""
    args = _cellargs.check_forward_args(spec, x, states, W_ih, W_hh, b_ih, b_hh, batch_first,
                                        lengths, check_finite=check_finite, **options)
    k = _checkpoint.segment_length(checkpoint, args.T)
    if k is not None and not _cellargs.is_empty(args):   # bounded memory
        return _checkpoint.checkpoint_forward(args, k, run, run_backward, "reference")
    return run(args)


def backward(spec, cache_type, dh, cache, finals, check_finite):
    """A reference backward function: the cache's own kind of backward, after checks."""
    if isinstance(cache, _checkpoint.CheckpointCache) and cache.spec is spec:
        return _checkpoint.checkpoint_backward(dh, cache, finals, check_finite=check_finite)
    if not isinstance(cache, cache_type):
        raise TypeError(f"cache must come from fastbptt.reference.{spec.forward_name}, got "
                        f"{type(cache).__name__}")
    dh, finals = _cellargs.check_backward_args(dh, finals, cache.args,
                                               check_finite=check_finite)
    return run_backward(dh, cache, finals)


def run_forward(args, step, kept_gates=()):
    """The forward time loop over validated arguments: step (see the module docstring)
    at t = 0..T-1. kept_gates: k per array that step keeps, (B, k*H) each.
    Returns (out, states, kept): out, the caller's new h (T, B, H) (or (B, T, H)), zero
    past each sequence's length; states, (T, B, H) per state; kept, (T, B, k*H) each."""
    T, B, H, dtype = args.T, args.B, args.H, args.dtype
    mask = _cellargs.step_mask(args)   # (T, B) or None
    xs = args.x.transpose(1, 0, 2) if args.batch_first else args.x   # (T, B, I)
    states = tuple(np.empty((T, B, H), dtype) for _ in args.states)
    kept = tuple(np.empty((T, B, k * H), dtype) for k in kept_gates)
    prev = args.states
    # an empty batch or state has nothing to compute at any step: skip the loop, so a
    # zero-size problem costs nothing whatever T is
    for t in range(T if B * H else 0):
        new, kept_t = step(args, xs[t], *prev)
        for buf, value in zip(kept, kept_t):
            buf[t] = value
        for buf, value, value_prev in zip(states, new, prev):
            buf[t] = value if mask is None else np.where(mask[t][:, None], value, value_prev)
        prev = tuple(buf[t] for buf in states)
    h = states[0]
    out = h if mask is None else np.where(mask[:, :, None], h, 0)
    out = out.transpose(1, 0, 2) if args.batch_first else out
    # A copy: the caller may edit what it gets back, and backward must not see that.
    return out.copy(order="C"), states, kept


def run_backward(dh, cache, finals):
    """The backward time loop over validated arguments: cache.step (see the module
    docstring) at t = T-1..0 and the weight gradients; returns the spec's Grads record.
    dh: (T, B, H) (or (B, T, H)) or None; finals: the final states' gradients or None."""
    args, spec = cache.args, cache.spec
    T, B, H, dtype = args.T, args.B, args.H, args.dtype
    GH = spec.gates * H
    mask = _cellargs.step_mask(args)
    x = _cellargs.x_for_weight_grads(args)
    xs = x.transpose(1, 0, 2) if args.batch_first else x
    dhs = None if dh is None else (dh.transpose(1, 0, 2) if args.batch_first else dh)
    h = getattr(cache, spec.states[0])

    dx = np.zeros_like(xs)
    dW_ih = np.zeros_like(args.W_ih)
    dW_hh = np.zeros_like(args.W_hh)
    db_ih = np.zeros(GH, dtype)
    db_hh = np.zeros(GH, dtype)
    carries = tuple(np.zeros((B, H), dtype) if f is None else f.copy() for f in finals)
    for t in reversed(range(T if B * H else 0)):   # as in forward
        keep = None if mask is None else mask[t][:, None]   # (B, 1)
        if dhs is not None:
            carries = (carries[0] + (dhs[t] if keep is None else np.where(keep, dhs[t], 0)),
                       *carries[1:])
        h_prev = h[t - 1] if t > 0 else args.h0
        dP, dR, carries = cache.step(t, carries, keep)
        dx[t] = dP @ args.W_ih
        dW_ih += dP.T @ xs[t]
        dW_hh += dR.T @ h_prev
        db_ih += dP.sum(axis=0)
        db_hh += dR.sum(axis=0)
    dx = np.ascontiguousarray(dx.transpose(1, 0, 2)) if args.batch_first else dx
    if not args.has_bias:
        db_ih = db_hh = None
    return spec.grads(dx, *carries, dW_ih, dW_hh, db_ih, db_hh)
