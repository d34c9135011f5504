"""GRU, compiled: the wrappers around fastbptt._kernels.gru.

Same signatures and semantics as fastbptt.reference.gru (the specification). The work
here is validation, allocation and dispatch; the numbers come from the kernels.
PyTorch's gates r, z, n:

    r = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)        (B, H)
    z = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
    n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}
"""
import numpy as np

from fastbptt._backend import dispatch
from fastbptt._grads import GRUGrads
from fastbptt._kernels import gru as _kernel
from fastbptt._kernels.recurrent_gemm import STEP_FORMS
from fastbptt._cell_args import check_backward_args, check_forward_args, x_for_weight_grads
from fastbptt import _workspace as workspace
from fastbptt._cell_outputs import is_empty, outputs
from fastbptt._checkpoint import (CheckpointCache, checkpoint_backward, checkpoint_forward,
                                  segment_length)
from fastbptt.reference import gru as reference
from fastbptt._step_form import step_form


class GRUCache:
    """What gru_backward needs from gru_forward. Opaque to callers but for h_n.

    It keeps references to x and the weights (do not modify them in place between
    forward and backward) and its own copy of every hidden state and gate.
    """
    __slots__ = ("args", "hbuf", "gates", "empty")

    def __init__(self, args, hbuf, gates, empty=None):
        self.args = args     # validated CellArgs (C-contiguous arrays)
        self.hbuf = hbuf     # (T+1, B, H), hbuf[0] = h0, hbuf[t] = h_t (carried past lengths)
        self.gates = gates   # (T*B, 4H) in x's row order: [r z n R_n] of every step
        self.empty = empty   # for an empty problem: the reference's cache, else None

    @property
    def h_n(self):
        """The final state (B, H), a new array: each sequence's state at its own last step."""
        if self.empty is not None:
            return self.empty.h_n
        return self.hbuf[-1].copy()


def _bias_rows(args):
    """The biases as the kernel's element-wise pass adds them, (4H,):
    [b_ir + b_hr, b_iz + b_hz, b_in, b_hn] (b_hn stays apart: r multiplies it)."""
    H = args.H
    return np.concatenate([args.b_ih[:2 * H] + args.b_hh[:2 * H], args.b_ih[2 * H:],
                           args.b_hh[2 * H:]])


@dispatch("gru_forward")
def gru_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False, lengths=None,
                check_finite=False, checkpoint=None):
    """Run a GRU over a sequence.

    x (T, B, I) (or (B, T, I) with batch_first, read without copying), h0 (B, H) or None
    for zeros, W_ih (3H, I), W_hh (3H, H), b_ih and b_hh (3H,) or both None (gate blocks
    r, z, n). float32 or float64, chosen by x. lengths (B,) ints in [0, T], or None:
    sequence b ends after lengths[b] steps (its state is carried unchanged past that, its
    outputs are zero).
    checkpoint: None (store every step for backward), True or an int k: store the state
    every k steps (k = ceil(sqrt(T)) for True) and recompute each segment in backward
    (fastbptt._checkpoint), for O(T/k + k) memory instead of O(T).
    Returns h, every hidden state, (T, B, H) (or (B, T, H)), a new array, and an opaque
    cache for gru_backward whose h_n is the final state (B, H).
    check_finite: raise ValueError if an argument holds NaN or Inf (x only inside the
    lengths); by default NaN and Inf propagate as IEEE arithmetic makes them.
    """
    args = check_forward_args("gru", x, h0, W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                              check_finite=check_finite)
    k = segment_length(checkpoint, args.T)
    if k is not None and not is_empty(args):
        return checkpoint_forward(args, k, gru_forward)
    if is_empty(args):
        h, ref_cache = reference.gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, batch_first,
                                             lengths)
        return h, GRUCache(args, None, None, ref_cache)
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.x.dtype
    # the large arrays (kept for backward, returned, or workspace) are recycled buffers
    # of this thread when free (_workspace: no fresh pages to fault in every call)
    hbuf = workspace.empty((T + 1, B, H), dtype)
    hbuf[0] = args.h0
    gates = workspace.empty((T * B, 4 * H), dtype)
    form = step_form("gru", B, H, dtype)
    _kernel.gru_forward(X=args.x.reshape(T * B, I), W_ih=args.W_ih, W_hh=args.W_hh,
                        bias=_bias_rows(args), gates=gates, hbuf=hbuf,
                        R=np.empty((B, 3 * H), dtype),
                        scratch=np.empty(3 * H * B, dtype) if form == "transposed" else None,
                        lengths=args.lengths, batch_first=args.batch_first,
                        step_form=STEP_FORMS[form])
    return outputs(hbuf, args), GRUCache(args, hbuf, gates)


@dispatch("gru_backward")
def gru_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time.

    dh: dL/dh at every step, shaped like gru_forward's output, or None (many-to-one);
    dh_n: dL/dh_n (B, H), the gradient reaching the final state from outside, or None.
    Returns GRUGrads(dx, dh0, dW_ih, dW_hh, db_ih, db_hh), all new arrays; db_ih and
    db_hh are None when forward had no biases.
    check_finite: raise ValueError if dh (inside the lengths) or dh_n holds NaN or Inf.
    """
    if isinstance(cache, CheckpointCache) and cache.args.cell == "gru":
        return checkpoint_backward(gru_backward, GRUGrads, dh, cache, dh_n,
                                   check_finite=check_finite)
    if not isinstance(cache, GRUCache):
        raise TypeError(
            f"cache must come from fastbptt.gru_forward, got {type(cache).__name__}"
        )
    if cache.empty is not None:
        # An empty problem, run by the reference in gru_forward.
        return reference.gru_backward(dh, cache.empty, dh_n, check_finite=check_finite)
    args = cache.args
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.x.dtype
    dh, dh_n, _ = check_backward_args(dh, dh_n, args, check_finite=check_finite)
    carry = np.zeros((B, H), dtype) if dh_n is None else dh_n.copy()
    dA = workspace.empty((T * B, 4 * H), dtype)
    dX = workspace.empty((T * B, I), dtype)
    dW_ih = workspace.empty((3 * H, I), dtype)
    dW_hh = workspace.empty((3 * H, H), dtype)
    db = np.empty(4 * H, dtype)
    form = step_form("gru", B, H, dtype)
    transposed = form == "transposed"
    _kernel.gru_backward(X=x_for_weight_grads(args).reshape(T * B, I), W_ih=args.W_ih,
                         W_hh=args.W_hh, gates=cache.gates, hbuf=cache.hbuf,
                         dh=None if dh is None else dh.reshape(T * B, H),
                         dA=dA, carry_h=carry, dX=dX, dW_ih=dW_ih, dW_hh=dW_hh, db=db,
                         W_hhT=workspace.empty((H, 3 * H), dtype) if transposed else None,
                         scratch=np.empty(H * B, dtype) if transposed else None,
                         lengths=args.lengths, batch_first=args.batch_first,
                         step_form=STEP_FORMS[form])
    if args.has_bias:
        # dA's columns are [da_r, da_z, da_n r, da_n] (fastbptt/_kernels/gru_cell.h):
        # dR = the first three blocks, dP = blocks r, z and the last
        db_hh = db[:3 * H].copy()
        db_ih = np.concatenate([db[:2 * H], db[3 * H:]])
    else:
        db_ih = db_hh = None
    return GRUGrads(dX.reshape(args.x.shape), carry, dW_ih, dW_hh, db_ih, db_hh)
