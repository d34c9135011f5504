"""Vanilla (Elman) RNN, compiled: the wrappers around fastbptt._kernels.rnn.

Same signatures and semantics as fastbptt.reference.rnn (the specification). The work
here is validation, allocation and dispatch; the numbers come from the kernels:

    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, H)
    h_t = f(a_t)
"""
import numpy as np

from fastbptt import reference
from fastbptt._backend import dispatch
from fastbptt._grads import RNNGrads
from fastbptt._kernels import rnn as _kernel
from fastbptt._kernels.recurrent_gemm import STEP_FORMS
from fastbptt._cell_args import check_backward_args, check_forward_args, x_for_weight_grads
from fastbptt._cell_outputs import is_empty, outputs
from fastbptt._checkpoint import (CheckpointCache, checkpoint_backward, checkpoint_forward,
                                  segment_length)
from fastbptt import _workspace as workspace
from fastbptt._nonlinearity import nonlinearity_code
from fastbptt._step_form import step_form


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
    (fastbptt._checkpoint), for O(T/k + k) memory instead of O(T).
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
    A = (hbuf[1:].reshape(T * B, H) if not args.batch_first
         else workspace.empty((T * B, H), dtype))
    bias = args.b_ih + args.b_hh
    form = step_form("rnn", B, H, dtype)
    _kernel.rnn_forward(X=args.x.reshape(T * B, I), W_ih=args.W_ih, W_hh=args.W_hh,
                        bias=bias, A=A, hbuf=hbuf,
                        scratch=np.empty(H * B, dtype) if form == "transposed" else None,
                        lengths=args.lengths, nonlinearity=args.code,
                        batch_first=args.batch_first, step_form=STEP_FORMS[form])
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
    form = step_form("rnn", B, H, dtype)
    transposed = form == "transposed"
    _kernel.rnn_backward(X=x_for_weight_grads(args).reshape(T * B, I), W_ih=args.W_ih,
                         W_hh=args.W_hh, hbuf=cache.hbuf,
                         dh=None if dh is None else dh.reshape(T * B, H),
                         dA=dA, carry_h=carry, dX=dX, dW_ih=dW_ih, dW_hh=dW_hh, db=db,
                         W_hhT=workspace.empty((H, H), dtype) if transposed else None,
                         scratch=np.empty(H * B, dtype) if transposed else None,
                         lengths=args.lengths,
                         hold=None if args.lengths is None else np.empty((B, H), dtype),
                         nonlinearity=args.code, batch_first=args.batch_first,
                         step_form=STEP_FORMS[form])
    db_ih, db_hh = (db, db.copy()) if args.has_bias else (None, None)
    return RNNGrads(dX.reshape(args.x.shape), carry, dW_ih, dW_hh, db_ih, db_hh)
