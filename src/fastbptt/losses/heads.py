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
from fastbptt.cells import docs
from fastbptt.losses.args import check_head_args
from fastbptt.losses.grads import HeadGrads
from fastbptt.runtime.backend import dispatch

# The parameters and sections every fused head documents alike, filled into the
# docstrings below (fastbptt.cells.docs.fill_from, by _head_doc).
_HEAD_DOCS = {
    "head_arrays": """\
h : ndarray, shape (..., H)
    The states the head reads, float32 or float64, any leading shape: (T, B, H) for a
    loss at every step, (B, H) for one at the last step.
W : ndarray, shape (V, H)
    The head's weights (an embedding's matrix for tied weights).
b : ndarray, shape (V,), or None
    The head's bias.""",
    "head_mask": """\
mask : ndarray, shape h.shape[:-1], or None
    Bool, or float weights per position; 0 leaves a position out.""",
    "head_compute_grad": """\
compute_grad : bool, default True
    False: the loss only.""",
    # the targets and the reduction of the element-wise heads, which torch's
    # BCEWithLogitsLoss and MSELoss define alike
    "elementwise_targets": """\
targets : ndarray
    Float targets of h's dtype, shape ``h.shape[:-1] + (V,)``.""",
    "elementwise_reduction": """\
reduction : {"mean", "sum"}, default "mean"
    "mean" divides by the counted elements (the sum of the mask's weights times V), as
    torch's ``BCEWithLogitsLoss`` and ``MSELoss`` do; "sum" adds them.""",
    "head_returns": """\
Returns
-------
loss : numpy scalar of h's dtype
    No counted position gives 0.
grads : HeadGrads or None
    ``HeadGrads(dh, dW, db)``, new arrays (``dh`` shaped like ``h``; ``db`` None without
    a bias), or None with ``compute_grad=False``.""",
    "head_raises": """\
Raises
------
ValueError
    Shapes that disagree (the message names the argument and the expected shape), class
    indices out of [0, V) (softmax_cross_entropy), or an unknown ``reduction``.
TypeError
    Mixed float dtypes, or targets, mask or arrays of an unsupported dtype.""",
}
# every parameter of an element-wise head, in its signature's order
_HEAD_DOCS["elementwise_parameters"] = "\n".join(
    ["Parameters", "----------"] + [_HEAD_DOCS[k] for k in (
        "head_arrays", "elementwise_targets", "head_mask", "elementwise_reduction",
        "head_compute_grad")])


def _head_doc(func):
    """Fill func's docstring from _HEAD_DOCS; its {head_sections} line becomes the
    Returns, Raises and See Also sections, the last naming func's reference twin."""
    sections = dict(_HEAD_DOCS, head_sections="\n\n".join([
        _HEAD_DOCS["head_returns"], _HEAD_DOCS["head_raises"],
        "See Also\n--------\n"
        f"fastbptt.reference.{func.__name__} : the pure-NumPy twin, with the math."]))
    return docs.fill_from(sections.__getitem__)(func)


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
@_head_doc
def softmax_cross_entropy(h, W, b, targets, *, mask=None, ignore_index=None,
                          reduction="mean", compute_grad=True):
    """Softmax cross-entropy of the affine head y = h W^T + b against class indices.

    The head and the loss are fused: the rows are processed in blocks (one GEMM for a
    block's logits, one pass for softmax, loss and gradient, two GEMMs into dW and dh), so
    the (N, V) logits never exist whole. Log-sum-exp stable::

        loss_n = logsumexp(y_n) - y_n[targets_n]       y_n = h_n W^T + b    (V,)

    Parameters
    ----------
    {head_arrays}
    targets : ndarray
        Class indices, integers of shape ``h.shape[:-1]`` in [0, V) (except where
        masked out or equal to ``ignore_index``).
    {head_mask}
    ignore_index : int or None
        Positions whose target equals it are left out, as in torch's ``cross_entropy``.
    reduction : {"mean", "sum"}, default "mean"
        "mean" divides by the counted positions (the sum of the mask's weights), as
        torch's ``cross_entropy`` does; "sum" adds them.
    {head_compute_grad}

    {head_sections}

    Examples
    --------
    Uniform logits over 5 classes give a loss of log 5 at every position:

    >>> import numpy as np
    >>> import fastbptt
    >>> h = np.zeros((3, 2, 4))                    # (T, B, H): uniform logits
    >>> W, b = np.ones((5, 4)), np.zeros(5)        # V = 5 classes
    >>> targets = np.array([[0, 1], [2, 3], [4, 0]])
    >>> loss, g = fastbptt.softmax_cross_entropy(h, W, b, targets)
    >>> bool(np.isclose(loss, np.log(5)))
    True
    >>> g.dh.shape, g.dW.shape, g.db.shape
    ((3, 2, 4), (5, 4), (5,))
    """
    return _run("softmax_cross_entropy", h, W, b, targets, mask, ignore_index, reduction,
                compute_grad)


@dispatch("sigmoid_binary_cross_entropy")
@_head_doc
def sigmoid_binary_cross_entropy(h, W, b, targets, *, mask=None, reduction="mean",
                                 compute_grad=True):
    """Binary cross-entropy of sigmoid(y), y = h W^T + b, against targets in [0, 1].

    Fused with the head like :func:`softmax_cross_entropy`; stable for large logits::

        loss = max(y, 0) - y t + log1p(exp(-|y|))       per element

    {elementwise_parameters}

    {head_sections}

    Examples
    --------
    Logits of 0 against targets of 1, without a bias: log 2 per element:

    >>> import numpy as np
    >>> import fastbptt
    >>> h, W = np.zeros((4, 3)), np.ones((2, 3))   # logits 0: sigmoid 0.5
    >>> loss, g = fastbptt.sigmoid_binary_cross_entropy(h, W, None, np.ones((4, 2)))
    >>> bool(np.isclose(loss, np.log(2))), g.db is None
    (True, True)
    """
    return _run("sigmoid_binary_cross_entropy", h, W, b, targets, mask, None, reduction,
                compute_grad)


@dispatch("mean_squared_error")
@_head_doc
def mean_squared_error(h, W, b, targets, *, mask=None, reduction="mean", compute_grad=True):
    """Squared error of the affine head y = h W^T + b against targets.

    Fused with the head like :func:`softmax_cross_entropy`::

        loss = (y - t)^2       per element

    {elementwise_parameters}

    {head_sections}

    Examples
    --------
    Outputs of 3 against targets of 1: (3 - 1)^2 = 4 per element:

    >>> import numpy as np
    >>> import fastbptt
    >>> h, W = np.ones((2, 3)), np.ones((1, 3))    # y = 3 everywhere
    >>> loss, g = fastbptt.mean_squared_error(h, W, None, np.ones((2, 1)))
    >>> float(loss), g.dh.shape
    (4.0, (2, 3))
    """
    return _run("mean_squared_error", h, W, b, targets, mask, None, reduction, compute_grad)


# An index gather, nothing to compile: the reference's is the implementation.
last_step = reference.last_step
