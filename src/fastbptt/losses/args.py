"""Argument checks of the fused output heads and losses, shared by the compiled wrappers
(fastbptt.losses) and the reference (fastbptt.reference.losses).

Every check runs here, before any compiled code: the kernels trust what they get. The
result, HeadArgs, is the problem flattened to N = prod(h.shape[:-1]) rows:

    h (N, H), W (V, H), b (V,) or None        y = h W^T + b   (N, V)
    targets: classes (N,) intp for the softmax cross-entropy (0 where a row is not
             counted, so that a kernel never indexes out of range), else (N, V) floats
    weights (N,) float64 or None: the weight of each row in the loss (the mask, times
             [target != ignore_index] for the cross-entropy); None means every row 1
    scale: what multiplies each row's gradient: 1 for "sum", 1 / denominator for "mean"
"""
import math
from typing import NamedTuple, Optional

import numpy as np

from fastbptt.runtime.validation import FLOAT_DTYPES, as_array, check_blas_size

REDUCTIONS = ("mean", "sum")
LOSSES = ("softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error")


class HeadArgs(NamedTuple):
    loss: str                   # one of LOSSES
    reduction: str              # "mean" or "sum"
    lead: tuple                 # h.shape[:-1]: the shape of dh's leading axes
    h: np.ndarray               # (N, H) C-contiguous, float32 or float64
    W: np.ndarray               # (V, H) C-contiguous, h's dtype
    b: Optional[np.ndarray]     # (V,) or None
    targets: np.ndarray         # (N,) intp classes, or (N, V) of h's dtype
    weights: Optional[np.ndarray]   # (N,) float64 >= 0, or None (all 1)
    denominator: float          # what "mean" divides the summed loss by (0: no rows count)
    scale: float                # 1 ("sum"), 1 / denominator ("mean"), 0 when nothing counts
    compute_grad: bool

    def reduce(self, total):
        """The loss from the summed row losses (float64), as a NumPy scalar of h's dtype."""
        if self.reduction == "mean":
            total = total / self.denominator if self.denominator > 0 else 0.0
        return self.dtype.type(total)

    @property
    def N(self):
        return self.h.shape[0]

    @property
    def H(self):
        return self.h.shape[1]

    @property
    def V(self):
        return self.W.shape[0]

    @property
    def dtype(self):
        return self.h.dtype


def _float_array(name, value, dtype):
    """value as an ndarray of float32/float64 equal to `dtype` (h's), or a TypeError."""
    value = as_array(name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"mixed dtypes: {name} is {value.dtype} but h is {dtype}; "
                        f"convert them to one dtype")
    return value


def _check_shape(name, array, expected, described):
    if array.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {described} = {tuple(expected)}, "
                         f"got {array.shape}")


def _mask_weights(mask, lead):
    """The mask as (N,) float64 weights >= 0, or None."""
    if mask is None:
        return None
    mask = as_array("mask", mask)
    if mask.dtype != np.bool_ and mask.dtype.kind not in "iuf":
        raise TypeError(f"mask must be bool or real (a weight per position), got {mask.dtype}")
    _check_shape("mask", mask, lead, "h.shape[:-1]")
    weights = mask.astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError("mask must hold finite weights >= 0 (0 leaves a position out)")
    return weights


def _position(flat_index, lead):
    return tuple(int(i) for i in np.unravel_index(flat_index, lead))


def _classes(targets, lead, V, weights, ignore_index):
    """Softmax targets as (N,) intp classes (0 where not counted) and the row weights."""
    targets = as_array("targets", targets)
    if targets.dtype == np.bool_ or targets.dtype.kind not in "iu":
        raise TypeError(f"targets must have an integer dtype (class indices in [0, V)), "
                        f"got {targets.dtype}")
    _check_shape("targets", targets, lead, "h.shape[:-1]")
    flat = targets.reshape(-1)
    if ignore_index is not None and (isinstance(ignore_index, (bool, np.bool_)) or
                                     not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"ignore_index must be an int or None, "
                        f"got {type(ignore_index).__name__}")
    if weights is None and ignore_index is None:
        # Every position counts: a range check, and the classes as they are (the common
        # case of a training step, kept cheap for small heads).
        if flat.size and (flat.min() < 0 or flat.max() >= V):
            _raise_out_of_range(flat, (flat < 0) | (flat >= V), lead, V)
        return np.ascontiguousarray(flat, dtype=np.intp), None
    counted = np.ones(flat.shape, bool) if weights is None else weights > 0
    if ignore_index is not None:
        counted &= flat != ignore_index
    bad = counted & ((flat < 0) | (flat >= V))
    if np.any(bad):
        _raise_out_of_range(flat, bad, lead, V)
    classes = np.where(counted, flat, 0).astype(np.intp)
    if weights is None:
        weights = None if counted.all() else counted.astype(np.float64)
    else:
        weights = np.where(counted, weights, 0.0)
    return classes, weights


def _raise_out_of_range(flat, bad, lead, V):
    first = int(np.flatnonzero(bad)[0])
    raise ValueError(f"targets must lie in [0, V) = [0, {V}) (V from W) where counted, "
                     f"got {int(flat[first])} at position {_position(first, lead)}")


def _float_targets(loss, targets, lead, N, V, dtype, weights):
    """BCE and MSE targets as (N, V) of h's dtype; BCE's must lie in [0, 1] where counted."""
    targets = _float_array("targets", targets, dtype)
    _check_shape("targets", targets, tuple(lead) + (V,), "h.shape[:-1] + (V,)")
    flat = np.ascontiguousarray(targets).reshape(N, V)
    if loss == "sigmoid_binary_cross_entropy" and flat.size:
        counted = slice(None) if weights is None else weights > 0
        rows = flat[counted]
        if not np.all((rows >= 0) & (rows <= 1)):
            raise ValueError("targets of the binary cross-entropy must lie in [0, 1] "
                             "(probabilities) where counted")
    return flat


def check_head_args(loss, h, W, b, targets, mask=None, ignore_index=None,
                    reduction="mean", compute_grad=True):
    """Validate one fused head-and-loss call; returns HeadArgs (see the module docstring).
    Raises TypeError/ValueError naming the argument."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    h = _float_array("h", h, None)
    if h.ndim < 1:
        raise ValueError("h must have at least one dimension, (..., H), got a scalar")
    dtype = h.dtype
    lead, H = h.shape[:-1], h.shape[-1]
    W = _float_array("W", W, dtype)
    if W.ndim != 2 or W.shape[1] != H:
        raise ValueError(f"W must have shape (V, H) with H = {H} (h's last axis), "
                         f"got {W.shape}")
    V = W.shape[0]
    if loss == "softmax_cross_entropy" and V == 0:
        raise ValueError("W must have at least one row: the softmax needs V >= 1 classes")
    if b is not None:
        b = _float_array("b", b, dtype)
        _check_shape("b", b, (V,), "(V,)")
        b = np.ascontiguousarray(b)
    if not isinstance(compute_grad, (bool, np.bool_)):
        raise TypeError(f"compute_grad must be True or False, got {compute_grad!r}")
    N = math.prod(lead)
    check_blas_size(N=N, V=V, H=H)

    weights = _mask_weights(mask, lead)
    if loss == "softmax_cross_entropy":
        targets, weights = _classes(targets, lead, V, weights, ignore_index)
        per_row = 1
    else:
        if ignore_index is not None:
            raise TypeError("ignore_index applies to softmax_cross_entropy only; use mask")
        targets = _float_targets(loss, targets, lead, N, V, dtype, weights)
        per_row = V   # torch's mean of BCEWithLogits and MSE runs over every element

    counted = float(N if weights is None else weights.sum())
    denominator = counted * per_row
    if reduction == "sum":
        scale = 1.0
    else:
        scale = 1.0 / denominator if denominator > 0 else 0.0
    return HeadArgs(loss, reduction, tuple(lead), np.ascontiguousarray(h).reshape(N, H),
                    np.ascontiguousarray(W), b, targets, weights, denominator, scale,
                    bool(compute_grad))


def check_last_step_args(h, lengths, batch_first):
    """h as a 3-D array (T, B, H) or (B, T, H) and lengths as (B,) intp in [1, T] or None."""
    h = as_array("h", h)
    if h.ndim != 3:
        raise ValueError(f"h must be 3-D, (T, B, H) or (B, T, H) with batch_first, "
                         f"got {h.ndim}-D with shape {h.shape}")
    T, B = (h.shape[1], h.shape[0]) if batch_first else h.shape[:2]
    if lengths is None:
        if T == 0:
            raise ValueError("h has no steps (T = 0): there is no last step")
        return h, None
    lengths = as_array("lengths", lengths)
    if lengths.dtype == np.bool_ or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}")
    _check_shape("lengths", lengths, (B,), "(B,)")
    if B and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [1, T] = [1, {T}] (T from h), got values "
                         f"from {lengths.min()} to {lengths.max()}; a sequence of length 0 "
                         f"has no last step in h (its final state is h0, cache.h_n)")
    return h, lengths.astype(np.intp)
