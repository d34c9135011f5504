"""Bounded-memory BPTT: the `checkpoint=` option of rnn_forward, lstm_forward and
gru_forward.

A plain forward keeps, for backward, every step's state and (LSTM, GRU) activated gates:
O(T) of (G+1)*B*H numbers. With checkpoint=k the forward runs as ceil(T/k) segments of k
steps, each a plain forward started from the previous segment's final state, and keeps
only the state at every segment's start (O(T/k) states) and the outputs (the caller's h,
O(T) like x). Backward walks the segments in reverse: it recomputes one segment's forward
from its stored state, runs the plain backward through it with the gradient arriving
from the later segments as dh_n (and dc_n), and frees it. Peak memory for the cache is
then O(T/k + k) states; k = ceil(sqrt(T)) (checkpoint=True) makes it O(sqrt(T)). The
price is one extra forward per call.

Results agree with the plain path to rounding, not always bit for bit. The per-step
arithmetic is the same, but the input projection X W_ih^T, and in backward dx and the
shared weights' gradients, are GEMMs over one segment's rows instead of all T*B, and
OpenBLAS's result for a row can depend on how it blocks the rows (last-bit differences
in the outputs at B = 1, T = 1000), and the weight gradients are summed per segment,
then across segments. tests/test_checkpoint.py holds the outputs, final states and
dh0 (dc0) bit for bit on small problems (where the blocking coincides), the gradients
there to 1e-12 (float64) / 1e-5 (float32), and everything on 600-1000-step sequences to
1e-10 / 1e-4 (relative and absolute: the weight gradients sum over T*B rows).
"""
import math

import numpy as np

from fastbptt.cells.args import check_backward_args


def segment_length(checkpoint, T):
    """The steps per segment for checkpoint (True: ceil(sqrt(T)); a positive int k), or
    None for a plain forward (None or False). Raises TypeError/ValueError otherwise."""
    if checkpoint is None or checkpoint is False:
        return None
    if checkpoint is True:
        return max(1, math.isqrt(T - 1) + 1 if T > 1 else 1)
    if isinstance(checkpoint, (int, np.integer)) and not isinstance(checkpoint, bool):
        if checkpoint < 1:
            raise ValueError(f"checkpoint must be >= 1 steps per segment, got {checkpoint}")
        return int(checkpoint)
    raise TypeError(f"checkpoint must be None, a bool or a positive int (steps per "
                    f"segment), got {checkpoint!r}")


class CheckpointCache:
    """What backward needs from a checkpointed forward: the validated arguments and the
    states at every segment's start. Opaque to callers but for h_n (and c_n)."""
    __slots__ = ("args", "k", "starts", "states", "final", "forward", "options")

    def __init__(self, args, k, starts, states, final, forward, options):
        self.args = args          # validated CellArgs
        self.k = k                # steps per segment
        self.starts = starts      # the first step of every segment
        self.states = states      # per segment, its initial states: (h,) or (h, c), (B, H)
        self.final = final        # the final states, (h_n,) or (h_n, c_n)
        self.forward = forward    # the cell's public forward function
        self.options = options    # its extra keywords (rnn: nonlinearity)

    @property
    def h_n(self):
        """The final hidden state (B, H), a new array."""
        return self.final[0].copy()

    @property
    def c_n(self):
        """The final cell state (B, H) of an LSTM, a new array."""
        if self.args.cell != "lstm":
            raise AttributeError(f"c_n is for lstm only, not {self.args.cell}")
        return self.final[1].copy()


def _segment(args, array, s, e):
    """Steps s..e-1 of a (T, B, .) array, or (B, T, .) when batch_first (a view)."""
    return array[:, s:e] if args.batch_first else array[s:e]


def _segment_lengths(args, s, e):
    """The segment's own lengths: each sequence's steps inside [s, e), in [0, e - s]."""
    if args.lengths is None:
        return None
    return np.clip(args.lengths - s, 0, e - s)


def _run_segment(cache_or_parts, s, e, states):
    args, forward, options = cache_or_parts
    bias = (args.b_ih, args.b_hh) if args.has_bias else (None, None)
    return forward(_segment(args, args.x, s, e), *states, args.W_ih, args.W_hh, *bias,
                   batch_first=args.batch_first, lengths=_segment_lengths(args, s, e),
                   **options)


def checkpoint_forward(args, k, forward, **options):
    """The checkpointed forward of a validated, non-empty problem (CellArgs): returns
    (h, CheckpointCache) like the plain forward returns (h, cache)."""
    T, B, H = args.T, args.B, args.H
    h = np.empty((B, T, H) if args.batch_first else (T, B, H), args.dtype)
    states = (args.h0,) if args.cell != "lstm" else (args.h0, args.c0)
    starts = list(range(0, T, k))
    stored = []
    for s in starts:
        e = min(s + k, T)
        stored.append(states)
        h_seg, seg_cache = _run_segment((args, forward, options), s, e, states)
        _segment(args, h, s, e)[...] = h_seg
        states = (seg_cache.h_n,) if args.cell != "lstm" else (seg_cache.h_n, seg_cache.c_n)
    return h, CheckpointCache(args, k, starts, stored, states, forward, options)


def checkpoint_backward(backward, grads_type, dh, cache, dh_n=None, dc_n=None,
                        check_finite=False):
    """Backpropagate through a checkpointed forward, segment by segment in reverse;
    returns the cell's Grads record like the plain backward."""
    args = cache.args
    dh, dh_n, dc_n = check_backward_args(dh, dh_n, args, dc_n, check_finite=check_finite)
    lstm = args.cell == "lstm"
    dx = np.empty_like(args.x)
    totals = None
    carry = (dh_n, dc_n) if lstm else (dh_n,)
    for s, states in zip(reversed(cache.starts), reversed(cache.states)):
        e = min(s + cache.k, args.T)
        _, seg_cache = _run_segment((args, cache.forward, cache.options), s, e, states)
        grads = backward(None if dh is None else _segment(args, dh, s, e), seg_cache, *carry)
        _segment(args, dx, s, e)[...] = grads.dx
        carry = (grads.dh0, grads.dc0) if lstm else (grads.dh0,)
        # The shared parameters' gradients: every field after the state gradients.
        shared = grads[1 + len(carry):]
        if totals is None:
            totals = list(shared)
        else:
            for total, part in zip(totals, shared):
                if total is not None:
                    total += part
    return grads_type(dx, *carry, *totals)
