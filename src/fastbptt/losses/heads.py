"""Fused output heads and losses, compiled: the wrappers around fastbptt._kernels.losses.

Same signatures and semantics as fastbptt.reference.losses (the specification, with the
math). An affine head y = h W^T + b over h (..., H) (any leading shape: (T, B, H) for a
loss at every step, (B, H) for one at the last step) fused with softmax cross-entropy,
sigmoid binary cross-entropy or squared error. The kernel walks the rows in blocks, so
the (N, V) logits are never stored whole. The work here is validation, allocation and
dispatch.

Many-to-one: the loss of a state at the last step gives dh, which enters the cell's
backward as dh_n:

    h, cache = fastbptt.lstm_forward(x, None, None, *weights, lengths=lengths)
    loss, g = fastbptt.softmax_cross_entropy(cache.h_n, W, b, labels)
    grads = fastbptt.lstm_backward(None, cache, dh_n=g.dh)

cache.h_n is each sequence's state at its own last step when lengths are given;
last_step(h, lengths) gathers the same states from the output h.
"""
import numpy as np

from fastbptt import reference
from fastbptt._kernels import losses as _kernel
from fastbptt.losses.args import check_head_args
from fastbptt.losses.grads import HeadGrads
from fastbptt.runtime.backend import dispatch

_KINDS = {
    "softmax_cross_entropy": _kernel.LossKind.SOFTMAX_XENT,
    "sigmoid_binary_cross_entropy": _kernel.LossKind.SIGMOID_BCE,
    "mean_squared_error": _kernel.LossKind.SQUARED_ERROR,
}

# Rows per block. Each block rereads and rewrites all of dW (V x H) in its GEMM
# dW += dY_blk^T h_blk, so few rows per block make that traffic dominate when V H is
# large: at N, H, V = 700, 650, 10000 float32, one thread (a loaded machine), 32-row blocks
# took 1.0-1.1 s, 64 rows 0.6-0.8 s, 128 and 256 rows 0.5-0.7 s. So about 8 MiB of logits
# a block, between 64 and 256 rows; the workspace stays O(block x V), never O(N x V).
_BLOCK_BYTES = 8 << 20
_MIN_BLOCK, _MAX_BLOCK = 64, 256


def block_rows(V, dtype):
    """The number of rows the kernel processes at a time, for V outputs of dtype."""
    rows = _BLOCK_BYTES // max(1, V * np.dtype(dtype).itemsize)
    return int(min(_MAX_BLOCK, max(_MIN_BLOCK, rows)))


def _run(loss, h, W, b, targets, mask, ignore_index, reduction, compute_grad):
    a = check_head_args(loss, h, W, b, targets, mask, ignore_index, reduction, compute_grad)
    if 0 in (a.N, a.H, a.V):
        # Nothing for the kernel to loop over; the reference defines the (zero or empty)
        # result.
        twin = getattr(reference, loss)
        kwargs = {"ignore_index": ignore_index} if loss == "softmax_cross_entropy" else {}
        return twin(h, W, b, targets, mask=mask, reduction=reduction,
                    compute_grad=compute_grad, **kwargs)
    dtype = a.dtype
    N, H, V = a.N, a.H, a.V
    dh = dW = db = None
    if a.compute_grad:
        dh = np.empty((N, H), dtype)
        dW = np.empty((V, H), dtype)
        db = np.empty(V, dtype) if a.b is not None else None
    work = np.empty((min(N, block_rows(V, dtype)), V), dtype)
    classes = a.targets if loss == "softmax_cross_entropy" else None
    targets = None if loss == "softmax_cross_entropy" else a.targets
    total = _kernel.head_loss(_KINDS[loss], a.h, a.W, a.b, classes, targets, a.weights,
                              a.scale, dh, dW, db, work)
    grads = HeadGrads(dh.reshape(a.lead + (H,)), dW, db) if a.compute_grad else None
    return a.reduce(total), grads


@dispatch("softmax_cross_entropy")
def softmax_cross_entropy(h, W, b, targets, *, mask=None, ignore_index=None,
                          reduction="mean", compute_grad=True):
    """Softmax cross-entropy of the head y = h W^T + b against class indices.

    h (..., H) float32/float64; W (V, H); b (V,) or None; targets ints of shape
    h.shape[:-1] in [0, V) (except where ignore_index or masked out); mask bool or float
    weights of shape h.shape[:-1], or None; reduction "mean" (over the counted positions,
    torch's semantics with ignore_index) or "sum".
    Returns (loss, HeadGrads(dh, dW, db)), or (loss, None) with compute_grad=False; the
    loss is a NumPy scalar of h's dtype.
    """
    return _run("softmax_cross_entropy", h, W, b, targets, mask, ignore_index, reduction,
                compute_grad)


@dispatch("sigmoid_binary_cross_entropy")
def sigmoid_binary_cross_entropy(h, W, b, targets, *, mask=None, reduction="mean",
                                 compute_grad=True):
    """Binary cross-entropy of sigmoid(y), y = h W^T + b, against targets in [0, 1].

    h (..., H); W (V, H); b (V,) or None; targets of h's dtype, shape h.shape[:-1] + (V,);
    mask weights of shape h.shape[:-1] or None; reduction "mean" (over every counted
    element, as torch's BCEWithLogitsLoss) or "sum".
    Returns (loss, HeadGrads(dh, dW, db)), or (loss, None) with compute_grad=False.
    """
    return _run("sigmoid_binary_cross_entropy", h, W, b, targets, mask, None, reduction,
                compute_grad)


@dispatch("mean_squared_error")
def mean_squared_error(h, W, b, targets, *, mask=None, reduction="mean", compute_grad=True):
    """Squared error of y = h W^T + b against targets.

    h (..., H); W (V, H); b (V,) or None; targets of h's dtype, shape h.shape[:-1] + (V,);
    mask weights of shape h.shape[:-1] or None; reduction "mean" (over every counted
    element, as torch's MSELoss) or "sum".
    Returns (loss, HeadGrads(dh, dW, db)), or (loss, None) with compute_grad=False.
    """
    return _run("mean_squared_error", h, W, b, targets, mask, None, reduction, compute_grad)


# An index gather, nothing to compile: the reference's is the implementation.
last_step = reference.last_step
