"""Argument checks shared by the compiled wrappers and the reference implementation.

Every public function validates here, before any compiled code runs: the kernels trust
what they are given (no bounds checks), so a shape or dtype that gets past these checks
is a bug here. Messages name the argument and what was expected.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# BLAS takes 32-bit ints for sizes and leading dimensions.
_BLAS_INT_MAX = 2**31 - 1


def as_array(name, value):
    """`value` as an ndarray (itself when it is one), or a TypeError naming `name` for
    what NumPy cannot make one of (ragged lists and the like)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array, got {type(value).__name__}") from exc


def as_float_array(name, value, ndim, dtype=None, contiguous=True):
    """`value` as a C-contiguous float32/float64 ndarray of `ndim` dimensions.

    The dtype is `dtype` when given (the dtype of the sequence decides for every other
    argument); anything else is an error, never a silent cast. A non-contiguous or
    negatively strided view is copied (the caller's array is never written). With
    contiguous=False the array is returned as it is (possibly a strided or broadcast
    view), so its sizes can be checked before a copy allocates them.
    """
    if not isinstance(value, np.ndarray):   # as_array, inlined: one call less per array
        try:
            value = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array, got {type(value).__name__}") from exc
    if value.dtype not in FLOAT_DTYPES:
        swapped = value.dtype.kind == "f" and value.dtype.newbyteorder() in FLOAT_DTYPES
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {value.dtype}"
            + (" (non-native byte order: convert with .astype(its native dtype))"
               if swapped else "")
        )
    if dtype is not None and value.dtype != dtype:
        raise TypeError(
            f"mixed dtypes: {name} is {value.dtype} but the sequence x is {dtype}; "
            f"convert them to one dtype"
        )
    if value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {value.ndim}-D with shape {value.shape}")
    if not contiguous:
        return value
    # Before the copy: a broadcast view of a few bytes can stand for terabytes, and no
    # kernel can index more than a 32-bit int of elements along any size or in all.
    if value.size > _BLAS_INT_MAX or max(value.shape, default=0) > _BLAS_INT_MAX:
        raise ValueError(f"{name} has shape {value.shape}: a size or the element count "
                         f"exceeds the 32-bit BLAS index limit ({_BLAS_INT_MAX})")
    return np.ascontiguousarray(value)


def check_finite(name, value, where=None):
    """Raise ValueError if `value` (or its entries value[where], `where` a boolean mask
    over its leading dimensions) holds NaN or Inf: the check of check_finite=True."""
    if value is None:
        return
    part = value if where is None else value[where]
    if not np.isfinite(part).all():
        bad = np.count_nonzero(~np.isfinite(part))
        raise ValueError(f"{name} must not contain NaN or Inf (check_finite=True), "
                         f"found {bad} non-finite value(s)")


def check_shape(name, array, expected, described, source=""):
    """Raise ValueError unless array.shape == expected; `described` spells the shape and
    `source` (optional) says which arguments its sizes come from."""
    if array.shape != expected:
        source = f" ({source})" if source else ""
        raise ValueError(f"{name} must have shape {described} = {expected}{source}, "
                         f"got {array.shape}")


def check_blas_size(**sizes):
    """BLAS takes int32 sizes: refuse products of dimensions it cannot index."""
    for what, n in sizes.items():
        if n > _BLAS_INT_MAX:
            raise ValueError(
                f"{what} = {n} exceeds the 32-bit BLAS index limit ({_BLAS_INT_MAX}); "
                f"split the batch or the sequence"
            )
