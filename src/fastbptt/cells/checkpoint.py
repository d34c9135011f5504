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
from fastbptt.cells.cache import CellCache


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


class CheckpointCache(CellCache):
    """What backward needs from a checkpointed forward: the validated arguments, the states
    at every segment's start, and the backend's plain forward and backward on validated
    arguments (run_forward(args) -> (h, cache), run_backward(dh, cache, finals) -> grads)."""
    __slots__ = ("args", "k", "starts", "states", "final", "run_forward", "run_backward",
                 "backend")

    def __init__(self, args, k, starts, states, final, run_forward, run_backward, backend):
        self.args = args                  # validated CellArgs
        self.k = k                        # steps per segment
        self.starts = starts              # the first step of every segment
        self.states = states              # per segment, its initial states (B, H) each
        self.final = final                # the final states, (h_n,) or (h_n, c_n)
        self.run_forward = run_forward
        self.run_backward = run_backward
        self.backend = backend

    @property
    def spec(self):
        return self.args.spec

    def final_states(self):
        return self.final


def _segment(args, array, s, e):
    """Steps s..e-1 of a (T, B, .) array, or (B, T, .) when batch_first, C-contiguous
    (a view time-major; a copy batch-first, as the kernels read one contiguous block)."""
    return np.ascontiguousarray(array[:, s:e]) if args.batch_first else array[s:e]


def segment_args(args, s, e, states):
    """The validated arguments of steps s..e-1 started from `states`: nothing is checked
    again, the segment's own lengths are each sequence's steps inside [s, e)."""
    lengths = None if args.lengths is None else np.clip(args.lengths - s, 0, e - s)
    return args._replace(x=_segment(args, args.x, s, e), h0=states[0],
                         c0=states[1] if len(states) > 1 else None, lengths=lengths, T=e - s,
                         steps=args.T if args.steps is None else args.steps)


def checkpoint_forward(args, k, run_forward, run_backward, backend):
    """The checkpointed forward of a validated, non-empty problem: returns
    (h, CheckpointCache) like the plain forward returns (h, cache)."""
    T, B = args.T, args.B
    h = None
    states = args.states
    starts = list(range(0, T, k))
    stored = []
    for s in starts:
        e = min(s + k, T)
        stored.append(states)
        h_seg, seg_cache = run_forward(segment_args(args, s, e, states))
        if h is None:
            # the output's width from the first segment's: H, or P with a projection
            width = h_seg.shape[-1]
            h = np.empty((B, T, width) if args.batch_first else (T, B, width), args.dtype)
        (h[:, s:e] if args.batch_first else h[s:e])[...] = h_seg
        states = tuple(a.copy() for a in seg_cache.final_states())
    return h, CheckpointCache(args, k, starts, stored, states, run_forward, run_backward,
                              backend)


def checkpoint_backward(dh, cache, finals, check_finite=False,
                        check_args=check_backward_args):
    """Backpropagate through a checkpointed forward, segment by segment in reverse;
    returns the cell's Grads record like the plain backward. check_args validates dh
    and finals (the projected LSTM's differ: cells/projection.py)."""
    args = cache.args
    dh, carry = check_args(dh, finals, args, check_finite=check_finite)
    n_states = len(args.spec.states)
    dx = np.empty_like(args.x)
    totals = None
    for s, states in zip(reversed(cache.starts), reversed(cache.states)):
        e = min(s + cache.k, args.T)
        seg_args = segment_args(args, s, e, states)
        _, seg_cache = cache.run_forward(seg_args)
        grads = cache.run_backward(None if dh is None else _segment(args, dh, s, e),
                                   seg_cache, carry)
        (dx[:, s:e] if args.batch_first else dx[s:e])[...] = grads.dx
        carry = tuple(grads[1:1 + n_states])
        # The shared parameters' gradients: every field after the state gradients.
        shared = grads[1 + n_states:]
        if totals is None:
            totals = list(shared)
        else:
            for total, part in zip(totals, shared):
                if total is not None:
                    total += part
    return args.spec.grads(dx, *carry, *totals)
