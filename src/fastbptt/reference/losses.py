"""Fused output heads and losses in plain NumPy: the specification of fastbptt.losses.

An affine head y = h W^T + b maps every hidden state to V outputs, and a loss compares them
with the targets. h (..., H) has any leading shape: (T, B, H) for a loss at every step
(many-to-many), (B, H) for one at the last step (many-to-one). With N = prod(h.shape[:-1])
rows, row n of weight w_n (the mask; 0 leaves it out):

    softmax cross-entropy  l_n = w_n (logsumexp(y_n) - y_n[t_n])
                           dl_n/dy_n = w_n (softmax(y_n) - e_{t_n})
    sigmoid BCE            l_n = w_n sum_v max(y,0) - y t + log1p(exp(-|y|))
                           dl_n/dy_n = w_n (sigmoid(y_n) - t_n)
    squared error          l_n = w_n sum_v (y - t)^2
                           dl_n/dy_n = w_n 2 (y_n - t_n)

reduction "sum": L = sum_n l_n; "mean": L = sum_n l_n / D with D = sum_n w_n (the counted
positions, torch's mean with ignore_index) for the cross-entropy, and sum_n w_n * V (every
counted element, torch's BCEWithLogitsLoss and MSELoss) for the other two; D = 0 gives
L = 0 and zero gradients. With dY = dL/dy (N, V):

    dh = dY W  (N, H),   dW = dY^T h  (V, H),   db = sum_n dY_n  (V,)

Here the whole (N, V) logit matrix is materialised; the compiled version walks blocks of
rows instead. The loss is summed in float64 and returned as a NumPy scalar of h's dtype.
"""
import numpy as np

from fastbptt.losses.args import check_head_args, check_last_step_args
from fastbptt.losses.grads import HeadGrads


def _logits(a):
    """y = h W^T + b, (N, V) in h's dtype."""
    y = a.h @ a.W.T
    if a.b is not None:
        y += a.b
    return y


def _row_weights(a):
    """(N,) float64 weights, 1 where no mask was given."""
    return np.ones(a.N) if a.weights is None else a.weights


def _finish(a, row_losses, dY):
    """Reduce the per-row losses (N,) float64 (0 where not counted) and turn dl/dy (N, V)
    into the head's gradients."""
    loss = a.reduce(float(row_losses.sum()))
    if not a.compute_grad:
        return loss, None
    dY = (dY * a.scale).astype(a.dtype)
    dh = (dY @ a.W).reshape(a.lead + (a.H,))
    dW = dY.T @ a.h
    db = dY.sum(axis=0) if a.b is not None else None
    return loss, HeadGrads(dh, dW, db)


def softmax_cross_entropy(h, W, b, targets, *, mask=None, ignore_index=None,
                          reduction="mean", compute_grad=True):
    """Softmax cross-entropy of the head y = h W^T + b against class indices.

    h (..., H) float32/float64; W (V, H); b (V,) or None; targets ints of shape
    h.shape[:-1] in [0, V) (except where ignore_index or masked out); mask bool or float
    weights of shape h.shape[:-1], or None; reduction "mean" or "sum".
    Returns (loss, HeadGrads(dh, dW, db)), or (loss, None) with compute_grad=False.
    """
    a = check_head_args("softmax_cross_entropy", h, W, b, targets, mask,
                        ignore_index, reduction, compute_grad)
    w = _row_weights(a)
    counted = w > 0
    y = _logits(a)
    rows = np.arange(a.N)
    # log-sum-exp with the row maximum subtracted: exp never overflows, and the largest
    # term is exp(0) = 1, so the sum never underflows to 0.
    m = y.max(axis=1, keepdims=True)
    e = np.exp(y - m)
    s = e.sum(axis=1, keepdims=True)
    logsumexp = (m + np.log(s))[:, 0].astype(np.float64)
    picked = y[rows, a.targets].astype(np.float64)
    row_losses = np.where(counted, w * (logsumexp - picked), 0.0)
    dY = e / s                               # softmax(y_n)
    dY[rows, a.targets] -= 1                 # - e_{t_n}
    dY = np.where(counted[:, None], dY * w[:, None], 0.0)
    return _finish(a, row_losses, dY)


def sigmoid_binary_cross_entropy(h, W, b, targets, *, mask=None, reduction="mean",
                                 compute_grad=True):
    """Binary cross-entropy of sigmoid(y), y = h W^T + b, against targets in [0, 1].

    h (..., H); W (V, H); b (V,) or None; targets of h's dtype, shape h.shape[:-1] + (V,);
    mask weights of shape h.shape[:-1] or None; reduction "mean" (over every counted
    element, as torch's BCEWithLogitsLoss) or "sum".
    Returns (loss, HeadGrads(dh, dW, db)), or (loss, None) with compute_grad=False.
    """
    a = check_head_args("sigmoid_binary_cross_entropy", h, W, b, targets, mask,
                        None, reduction, compute_grad)
    w = _row_weights(a)
    counted = w > 0
    y = _logits(a).astype(np.float64)
    t = a.targets.astype(np.float64)
    # -t log s(y) - (1 - t) log(1 - s(y)) in the form that neither overflows nor loses
    # bits: exp(-|y|) <= 1.
    elements = np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))
    row_losses = np.where(counted, w * elements.sum(axis=1), 0.0)
    sigmoid = 0.5 * (1 + np.tanh(0.5 * y))   # no overflow for large |y|
    dY = np.where(counted[:, None], (sigmoid - t) * w[:, None], 0.0)
    return _finish(a, row_losses, dY)


def mean_squared_error(h, W, b, targets, *, mask=None, reduction="mean", compute_grad=True):
    """Squared error of y = h W^T + b against targets.

    h (..., H); W (V, H); b (V,) or None; targets of h's dtype, shape h.shape[:-1] + (V,);
    mask weights of shape h.shape[:-1] or None; reduction "mean" (over every counted
    element, as torch's MSELoss) or "sum".
    Returns (loss, HeadGrads(dh, dW, db)), or (loss, None) with compute_grad=False.
    """
    a = check_head_args("mean_squared_error", h, W, b, targets, mask, None,
                        reduction, compute_grad)
    w = _row_weights(a)
    counted = w > 0
    d = _logits(a).astype(np.float64) - a.targets
    row_losses = np.where(counted, w * (d * d).sum(axis=1), 0.0)
    dY = np.where(counted[:, None], 2 * d * w[:, None], 0.0)
    return _finish(a, row_losses, dY)


def last_step(h, lengths=None, batch_first=False):
    """Each sequence's last hidden state, (B, H), a new array.

    Parameters
    ----------
    h : ndarray, shape (T, B, H), or (B, T, H) with ``batch_first=True``
        As a forward function returns it.
    lengths : array_like of int, shape (B,), or None
        In [1, T]; None means every sequence has T steps.
    batch_first : bool, default False

    Returns
    -------
    ndarray, shape (B, H)
        Row b is h at step ``lengths[b] - 1``. With the cells' lengths this equals
        ``cache.h_n``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> h = np.arange(12.0).reshape(3, 2, 2)           # (T, B, H)
    >>> fastbptt.last_step(h, lengths=[3, 1])
    array([[8., 9.],
           [2., 3.]])
    """
    h, lengths = check_last_step_args(h, lengths, batch_first)
    steps = h if not batch_first else h.transpose(1, 0, 2)     # (T, B, H)
    if lengths is None:
        return steps[-1].copy()
    return steps[lengths - 1, np.arange(steps.shape[1])]
