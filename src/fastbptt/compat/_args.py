"""How the compat modules read their arguments: the way the NumPy originals do.

The core API (fastbptt.rnn_forward, ...) is strict: one float dtype, exact shapes. The
drop-in modules instead take what the originals' NumPy expressions take, and return what
they return:

- dtypes promote as NumPy promotes them. The result dtype is computed once from every
  argument (np.result_type, Python scalars weak as in NumPy 2), integers becoming the
  float a ufunc such as np.tanh would give them (int64 -> float64, int16 -> float32);
  then every argument is converted to it and the work (compiled or NumPy) runs in that
  one dtype. Only float32 and float64 results are computed: float16, longdouble and
  complex results, boolean, string and object arrays raise TypeError naming the
  arguments.
- indices may be Python ints, NumPy integer scalars or integer arrays of any shape, and
  negative indices count from the end as in W[x]; float and boolean indices (NumPy
  refuses the first and reads the second as a mask) raise TypeError.

Every check runs before any conversion or copy: a huge broadcast view of another dtype is
refused before astype could allocate it.
"""
import numpy as np

from fastbptt.runtime.validation import FLOAT_DTYPES, check_blas_size

_REAL_KINDS = "iuf"   # signed, unsigned, float: what promotes to a float result
_FLOAT32, _FLOAT64 = FLOAT_DTYPES


def asarray(name, value):
    """value as an ndarray of real numbers (ints or floats), a view where possible."""
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array, got {type(value).__name__}") from exc
    if value.dtype.kind not in _REAL_KINDS:
        what = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes"}
        raise TypeError(f"{name} must hold real numbers (floats, or integers, which "
                        f"promote as in NumPy), got {what.get(value.dtype.kind, 'dtype')} "
                        f"{value.dtype}")
    return value


def result_dtype(caller, ufunc=True, **values):
    """The dtype NumPy gives the original's result from these arguments (name=value).

    ufunc=True: the original applies a float ufunc (tanh, exp, a sigmoid) to the result,
    so an integer result type becomes the float NumPy's loops pick for it.
    """
    parts = []
    for name, value in values.items():
        # Python int and float stay Python scalars: weak in np.result_type (NEP 50), as
        # `x.dot(Wx) + 0` keeps float32 in the original. A dtype stands for an array
        # already checked (a cache's); an array by its dtype (as an array would: no
        # value-based casting in NumPy 2), which is quicker to promote.
        if isinstance(value, np.ndarray):
            parts.append(asarray(name, value).dtype)
        elif isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must hold real numbers, got a bool")
        elif isinstance(value, (int, float, np.dtype)):
            parts.append(value)
        else:
            parts.append(asarray(name, value))
    dtype = np.result_type(*parts)
    if dtype is _FLOAT64 or dtype is _FLOAT32:     # the usual case, decided
        return dtype
    dtype = dtype.newbyteorder("=")
    if ufunc and dtype.kind in "iu":
        dtype = np.promote_types(dtype, np.float16)    # np.tanh(int16) is float32, ...
    if dtype not in FLOAT_DTYPES:
        given = ", ".join(f"{name} {getattr(part, 'dtype', part)}"
                          for name, part in zip(values, parts)
                          if not isinstance(part, (int, float)))
        raise TypeError(f"{caller}: the arguments ({given}) promote to {dtype}; "
                        f"fastbptt.compat computes in float32 or float64 only")
    return dtype


def convert(name, value, dtype):
    """value as an ndarray of `dtype` (NumPy's promotion, checked by result_dtype); the
    caller's array itself when it already is one, never written."""
    value = asarray(name, value)
    if value.dtype != dtype:
        # before astype: a broadcast view of a few bytes can stand for terabytes
        check_blas_size(**{f"the element count of {name} {value.shape}": value.size})
        value = value.astype(dtype)
    return value


def indices(name, value, V, source):
    """Integer indices into V rows, any shape (a Python int too), as W[x] reads them:
    returns them as an intp array in [0, V), negative ones counted from the end."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind not in "iu":
        if arr.dtype == np.bool_:
            raise TypeError(f"{name} must hold integer indices, got bool (NumPy would read "
                            f"a boolean array as a mask, not as indices)")
        raise TypeError(f"{name} must hold integer indices, got dtype {arr.dtype} (NumPy "
                        f"refuses non-integer indices too)")
    if not arr.size:
        return arr.astype(np.intp)
    low, high = arr.min(), arr.max()
    if low < -V or high >= V:
        raise ValueError(f"{name} must lie in [-V, V) = [{-V}, {V}) (V from {source}), got "
                         f"values from {low} to {high}")
    if low >= 0:
        return arr.astype(np.intp, copy=False)
    arr = arr.astype(np.intp)        # a new array: normalised without writing theirs
    arr[arr < 0] += V
    return arr


def broadcast_to(name, value, shape, described):
    """value (an ndarray) broadcast to `shape` as NumPy would (a read-only view; value
    itself when it has that shape)."""
    if value.shape == shape:
        return value
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise ValueError(f"{name} must broadcast to {described} = {shape}, got shape "
                         f"{value.shape}") from None


def unbroadcast(grad, shape):
    """The gradient of an input of `shape` that NumPy broadcast to grad.shape: grad summed
    over the axes broadcasting added or stretched (the adjoint of np.broadcast_to)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(lead))) if lead else grad
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad
