"""The step-form policy: how the compiled kernels make each time step's recurrent product.

The one sequential piece of a forward or backward pass is the product of one step's B
rows with W_hh, (B x GH) = (B x H)(GH x H)^T forward and (B x H) = (B x GH)(GH x H)
backward (GH = G*H, G = 1, 4, 3 gates for rnn, lstm, gru). The kernels make it in one of
three forms (fastbptt/_kernels/recurrent_gemm.pxd, which runs them), chosen here once per
call from the shape and passed to them:

- "gemv": one GEMV per row. OpenBLAS's GEMM driver (packing, blocking) costs
  microseconds a call that a few rows do not pay back, so up to GEMV_ROWS rows one
  GEMV a row is faster, for every cell and both dtypes; from B = 5 on the GEMM wins (at
  B = 8 it gains at small H and loses at larger H, so it is kept from B = 5). W_hh^T is
  not needed.
- "transposed": the product as its transpose, W_hh h^T, a (GH x B) result moved back by
  a small tiled transpose. OpenBLAS tiles its output's columns by its micro-kernel
  width, so with few rows B against many columns (1 < B < H) the transposed GEMM ran
  faster than the plain one, by more than the transpose costs: for the RNN and the GRU
  in both dtypes, for the LSTM (4H output columns) in float32 only; its float64 gained
  nothing, so it keeps the plain form and skips the transposes. Backward reads a
  contiguous W_hh^T (H x GH), made once per call.
- "plain": one GEMM h W_hh^T straight into the step's rows; everything else.

The measurements behind these rules, with their commands, are in bench/RESULTS.md ("The
step-form policy"). Tests derive the shapes that must cover every form from this
function (tests/test_gemm_calls.py).
"""
import numpy as np

# Up to this many rows a step runs as per-row GEMVs.
GEMV_ROWS = 4

STEP_FORMS = ("gemv", "transposed", "plain")

_CELLS = ("rnn", "lstm", "gru")
_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def step_form(cell, B, H, dtype):
    """The form of cell's per-step product for batch B, hidden size H and dtype:
    "gemv", "transposed" or "plain" (the rules and their reasons above).

    cell is "rnn", "lstm" or "gru"; B and H are non-negative ints; dtype float32 or
    float64 (anything np.dtype takes). Raises ValueError for anything else.
    """
    # The wrappers call this twice per forward+backward with validated arguments: the
    # first test is their fast path, the full checks run only when it fails.
    if (type(B) is not int or type(H) is not int or B < 0 or H < 0
            or (dtype is not _FLOAT32 and dtype is not _FLOAT64) or cell not in _CELLS):
        B, H, dtype = _checked(cell, B, H, dtype)
    if B <= GEMV_ROWS:
        return "gemv"
    if B < H and (cell != "lstm" or dtype is _FLOAT32):
        return "transposed"
    return "plain"


def _checked(cell, B, H, dtype):
    """step_form's arguments as plain ints and a numpy dtype, or ValueError."""
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {', '.join(map(repr, _CELLS))}, got {cell!r}")
    for name, value in (("B", B), ("H", H)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    try:
        resolved = None if dtype is None else np.dtype(dtype)   # np.dtype(None) is float64
    except TypeError:
        resolved = None
    # (resolved first: a numpy dtype compares equal to None, as np.dtype(None) is float64)
    if resolved is not None and resolved == _FLOAT32:
        return int(B), int(H), _FLOAT32
    if resolved is not None and resolved == _FLOAT64:
        return int(B), int(H), _FLOAT64
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
