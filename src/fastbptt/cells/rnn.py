"""Vanilla (Elman) RNN, compiled: the wrappers around fastbptt._kernels.rnn.

Same signatures and semantics as fastbptt.reference.rnn (the specification). The work
here is validation, allocation and dispatch; the numbers come from the kernels:

    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, H)
    h_t = f(a_t)
"""
import numpy as np

from fastbptt import reference
from fastbptt.runtime.backend import dispatch
from fastbptt.cells.grads import RNNGrads
from fastbptt._kernels import rnn as _kernel
from fastbptt.cells.args import check_backward_args, check_forward_args, x_for_weight_grads
from fastbptt.cells.args import is_empty
from fastbptt.cells.outputs import outputs, per_row_gemv
from fastbptt.cells.checkpoint import (CheckpointCache, checkpoint_backward, checkpoint_forward,
                                  segment_length)
from fastbptt.cells import workspace as workspace
from fastbptt._nonlinearity import nonlinearity_code


class RNNCache:
    """What rnn_backward needs from rnn_forward. Opaque to callers but for h_n.

    It keeps references to x and the weights (do not modify them in place between
    forward and backward) and its own copy of every hidden state.
    """
    __slots__ = ("args", "hbuf", "empty")

    def __init__(self, args, hbuf, empty=None):
        self.args = args   # validated CellArgs (C-contiguous arrays)
        self.hbuf = hbuf   # (T+1, B, H), hbuf[0] = h0, hbuf[t] = h_t (carried past lengths)
        self.empty = empty  # for an empty problem: the reference's cache, else None

    @property
    def h_n(self):
        """The final state (B, H), a new array: each sequence's state at its own last step."""
        if self.empty is not None:
            return self.empty.h_n
        return self.hbuf[-1].copy()


def _transposed_step(B, H):
    """Whether the per-step GEMM runs as its transpose (W_hh h^T instead of h W_hh^T).

    OpenBLAS tiles the output's columns by its micro-kernel width, so with few rows
    (B = 32) against H = 256 the transposed product ran about 30% faster here (100 calls:
    4.3 ms against 6.1 ms, AVX2 kernels; 2.5 against 4.0 with AVX-512), worth the small
    (H x B) transpose of its result per step. B <= 4 uses per-row GEMVs instead
    (per_row_gemv), which need no W_hh^T.
    """
    return 1 < B < H and not per_row_gemv(B)


@dispatch("rnn_forward")
def rnn_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                batch_first=False, lengths=None, check_finite=False, checkpoint=None):
    """Run a vanilla RNN over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first, read without copying), h0 (B, H) or None
    for zeros, W_ih (H, I), W_hh (H, H), b_ih and b_hh (H,) or both None;
    nonlinearity "tanh", "relu", "sigmoid" or "identity". float32 or float64, chosen by x.
    lengths (B,) ints in [0, T], or None: sequence b ends after lengths[b] steps (its
    state is carried unchanged past that, its outputs are zero).
    checkpoint: None (store every step for backward), True or an int k: store the state
    every k steps (k = ceil(sqrt(T)) for True) and recompute each segment in backward
    (fastbptt.cells.checkpoint), for O(T/k + k) memory instead of O(T).
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), a new array, and an opaque
    cache for rnn_backward whose h_n is the final state (B, H).
    check_finite: raise ValueError if an argument holds NaN or Inf (x only inside the
    lengths); by default NaN and Inf propagate as IEEE arithmetic makes them.
    """
    code = nonlinearity_code(nonlinearity)
    args = check_forward_args("rnn", x, h0, W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                              nonlinearity=nonlinearity, code=code, check_finite=check_finite)
    k = segment_length(checkpoint, args.T)
    if k is not None and not is_empty(args):
        return checkpoint_forward(args, k, rnn_forward, nonlinearity=nonlinearity)
    if is_empty(args):
        h, ref_cache = reference.rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh,
                                             nonlinearity, batch_first, lengths)
        return h, RNNCache(args, None, ref_cache)
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.x.dtype
    # the large arrays (kept for backward, returned, or workspace) are recycled buffers
    # of this thread when free (_workspace: no fresh pages to fault in every call)
    hbuf = workspace.empty((T + 1, B, H), dtype)
    hbuf[0] = args.h0
    # The pre-activations of all steps, in x's row order. Time-major, that is the order of
    # hbuf[1:], so they are computed in place there (f is applied element by element) and
    # no T*B*H workspace is touched beside hbuf.
    P = (hbuf[1:].reshape(T * B, H) if not args.batch_first
         else workspace.empty((T * B, H), dtype))
    bias = args.b_ih + args.b_hh
    scratch = np.empty(H * B, dtype)
    _kernel.rnn_forward(args.x.reshape(T * B, I), args.W_ih, args.W_hh, bias, P, hbuf,
                        scratch, args.lengths, args.code, args.batch_first,
                        _transposed_step(B, H))
    return outputs(hbuf, args), RNNCache(args, hbuf)


@dispatch("rnn_backward")
def rnn_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time.

    dh: dL/dh at every step, shaped like rnn_forward's output, or None (many-to-one);
    dh_n: dL/dh_n (B, H), the gradient reaching the final state from outside, or None.
    Returns RNNGrads(dx, dh0, dW_ih, dW_hh, db_ih, db_hh), all new arrays.
    check_finite: raise ValueError if dh (inside the lengths) or dh_n holds NaN or Inf.
    """
    if isinstance(cache, CheckpointCache) and cache.args.cell == "rnn":
        return checkpoint_backward(rnn_backward, RNNGrads, dh, cache, dh_n,
                                   check_finite=check_finite)
    if not isinstance(cache, RNNCache):
        raise TypeError(
            f"cache must come from fastbptt.rnn_forward, got {type(cache).__name__}"
        )
    if cache.empty is not None:
        # An empty problem, run by the reference in rnn_forward.
        return reference.rnn_backward(dh, cache.empty, dh_n, check_finite=check_finite)
    args = cache.args
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.x.dtype
    dh, dh_n, _ = check_backward_args(dh, dh_n, args, check_finite=check_finite)
    carry = np.zeros((B, H), dtype) if dh_n is None else dh_n.copy()
    dA = workspace.empty((T * B, H), dtype)
    dX = workspace.empty((T * B, I), dtype)
    dW_ih = workspace.empty((H, I), dtype)
    dW_hh = workspace.empty((H, H), dtype)
    db = np.empty(H, dtype)
    transposed = _transposed_step(B, H)
    W_hhT = workspace.empty((H if transposed else 0, H), dtype)
    scratch = np.empty(H * B, dtype)
    _kernel.rnn_backward(x_for_weight_grads(args).reshape(T * B, I), args.W_ih, args.W_hh, cache.hbuf,
                         None if dh is None else dh.reshape(T * B, H),
                         dA, carry, dX, dW_ih, dW_hh, db, W_hhT, scratch,
                         args.lengths, None if args.lengths is None else np.empty((B, H), dtype),
                         args.code, args.batch_first, transposed)
    db_ih, db_hh = (db, db.copy()) if args.has_bias else (None, None)
    return RNNGrads(dX.reshape(args.x.shape), carry, dW_ih, dW_hh, db_ih, db_hh)
