"""LSTM, compiled: the wrappers around fastbptt._kernels.lstm.

Same signatures and semantics as fastbptt.reference.lstm (the specification). The work
here is validation, allocation and dispatch; the numbers come from the kernels:

    z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh      (B, 4H), blocks [i f g o]
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)             (B, H)
"""
import numpy as np

from fastbptt._backend import dispatch
from fastbptt._grads import LSTMGrads
from fastbptt._kernels import lstm as _kernel
from fastbptt._kernels.recurrent_gemm import STEP_FORMS
from fastbptt._cell_args import check_backward_args, check_forward_args, x_for_weight_grads
from fastbptt import _workspace as workspace
from fastbptt._cell_outputs import is_empty, outputs
from fastbptt._checkpoint import (CheckpointCache, checkpoint_backward, checkpoint_forward,
                                  segment_length)
from fastbptt.reference import lstm as reference
from fastbptt._step_form import step_form


class LSTMCache:
    """What lstm_backward needs from lstm_forward. Opaque to callers but for h_n and c_n.

    It keeps references to x and the weights (do not modify them in place between
    forward and backward) and its own copy of the gates and of every state.
    """
    __slots__ = ("args", "gates", "hbuf", "cbuf", "empty")

    def __init__(self, args, gates, hbuf, cbuf, empty=None):
        self.args = args     # validated CellArgs (C-contiguous arrays)
        self.gates = gates   # (T*B, 4H) activated gates [i f g o], in x's row order
        self.hbuf = hbuf     # (T+1, B, H), hbuf[0] = h0, hbuf[t] = h_t (carried past lengths)
        self.cbuf = cbuf     # (T+1, B, H), the cell states likewise
        self.empty = empty   # for an empty problem: the reference's cache, else None

    @property
    def h_n(self):
        """The final hidden state (B, H), a new array: each sequence's h at its own last
        step."""
        if self.empty is not None:
            return self.empty.h_n
        return self.hbuf[-1].copy()

    @property
    def c_n(self):
        """The final cell state (B, H), a new array: each sequence's c at its own last
        step."""
        if self.empty is not None:
            return self.empty.c_n
        return self.cbuf[-1].copy()


@dispatch("lstm_forward")
def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False,
                 lengths=None, check_finite=False, checkpoint=None):
    """Run an LSTM over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first, read without copying), h0 and c0 (B, H)
    or None for zeros, W_ih (4H, I), W_hh (4H, H), b_ih and b_hh (4H,) or both None; gate
    blocks i, f, g, o as in PyTorch. float32 or float64, chosen by x.
    lengths (B,) ints in [0, T], or None: sequence b ends after lengths[b] steps (its
    state is carried unchanged past that, its outputs are zero).
    checkpoint: None (store every step for backward), True or an int k: store the state
    every k steps (k = ceil(sqrt(T)) for True) and recompute each segment in backward
    (fastbptt._checkpoint), for O(T/k + k) memory instead of O(T).
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), a new array, and an opaque
    cache for lstm_backward whose h_n and c_n are the final states (B, H).
    check_finite: raise ValueError if an argument holds NaN or Inf (x only inside the
    lengths); by default NaN and Inf propagate as IEEE arithmetic makes them.
    """
    args = check_forward_args("lstm", x, h0, W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                              c0=c0, check_finite=check_finite)
    k = segment_length(checkpoint, args.T)
    if k is not None and not is_empty(args):
        return checkpoint_forward(args, k, lstm_forward)
    if is_empty(args):
        h, ref_cache = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh,
                                              batch_first, lengths)
        return h, LSTMCache(args, None, None, None, ref_cache)
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.dtype
    # the large arrays (kept for backward, returned, or workspace) are recycled buffers
    # of this thread when free (_workspace: no fresh pages to fault in every call)
    hbuf = workspace.empty((T + 1, B, H), dtype)
    cbuf = workspace.empty((T + 1, B, H), dtype)
    hbuf[0] = args.h0
    cbuf[0] = args.c0
    gates = workspace.empty((T * B, 4 * H), dtype)
    form = step_form("lstm", B, H, dtype)
    _kernel.lstm_forward(X=args.x.reshape(T * B, I), W_ih=args.W_ih, W_hh=args.W_hh,
                         bias=args.b_ih + args.b_hh, gates=gates, hbuf=hbuf, cbuf=cbuf,
                         scratch=np.empty(4 * H * B, dtype) if form == "transposed" else None,
                         lengths=args.lengths, batch_first=args.batch_first,
                         step_form=STEP_FORMS[form])
    return outputs(hbuf, args), LSTMCache(args, gates, hbuf, cbuf)


@dispatch("lstm_backward")
def lstm_backward(dh, cache, dh_n=None, dc_n=None, check_finite=False):
    """Backpropagate through time.

    dh: dL/dh at every step, shaped like lstm_forward's output, or None (many-to-one);
    dh_n, dc_n: dL/dh_n and dL/dc_n (B, H), the gradients reaching the final states from
    outside, or None. At least one of dh, dh_n, dc_n must be given.
    Returns LSTMGrads(dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh), all new arrays.
    check_finite: raise ValueError if dh (inside the lengths), dh_n or dc_n holds NaN
    or Inf.
    """
    if isinstance(cache, CheckpointCache) and cache.args.cell == "lstm":
        return checkpoint_backward(lstm_backward, LSTMGrads, dh, cache, dh_n, dc_n,
                                   check_finite=check_finite)
    if not isinstance(cache, LSTMCache):
        raise TypeError(
            f"cache must come from fastbptt.lstm_forward, got {type(cache).__name__}"
        )
    if cache.empty is not None:
        # An empty problem, run by the reference in lstm_forward.
        return reference.lstm_backward(dh, cache.empty, dh_n, dc_n,
                                       check_finite=check_finite)
    args = cache.args
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.dtype
    dh, dh_n, dc_n = check_backward_args(dh, dh_n, args, dc_n, check_finite=check_finite)
    carry_h = np.zeros((B, H), dtype) if dh_n is None else dh_n.copy()
    carry_c = np.zeros((B, H), dtype) if dc_n is None else dc_n.copy()
    dA = workspace.empty((T * B, 4 * H), dtype)
    dX = workspace.empty((T * B, I), dtype)
    dW_ih = workspace.empty((4 * H, I), dtype)
    dW_hh = workspace.empty((4 * H, H), dtype)
    db = np.empty(4 * H, dtype)
    form = step_form("lstm", B, H, dtype)
    transposed = form == "transposed"
    _kernel.lstm_backward(X=x_for_weight_grads(args).reshape(T * B, I), W_ih=args.W_ih,
                          W_hh=args.W_hh, gates=cache.gates, hbuf=cache.hbuf, cbuf=cache.cbuf,
                          dh=None if dh is None else dh.reshape(T * B, H),
                          dA=dA, carry_h=carry_h, carry_c=carry_c, dX=dX, dW_ih=dW_ih,
                          dW_hh=dW_hh, db=db,
                          W_hhT=workspace.empty((H, 4 * H), dtype) if transposed else None,
                          scratch=np.empty(H * B, dtype) if transposed else None,
                          lengths=args.lengths,
                          hold=None if args.lengths is None else np.empty((B, H), dtype),
                          batch_first=args.batch_first, step_form=STEP_FORMS[form])
    db_ih, db_hh = (db, db.copy()) if args.has_bias else (None, None)
    return LSTMGrads(dX.reshape(args.x.shape), carry_h, carry_c, dW_ih, dW_hh, db_ih, db_hh)
