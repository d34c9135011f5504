"""The LSTM with a projection (LSTMP; torch.nn.LSTM's proj_size): its arguments' checks,
shared by the compiled wrapper (cells/lstmp.py) and the reference twin (reference/lstmp.py).
Pure Python: the reference imports it.

With W_hr given, lstm_forward runs
    z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,  c_t = f c_{t-1} + i g,
    h_t = W_hr (o tanh(c_t))
so the hidden state h has P = W_hr.shape[0] features and the cell state c has H:
    x (T, B, I) (or (B, T, I));  h0 (B, P);  c0 (B, H);  W_ih (4H, I);  W_hh (4H, P);
    W_hr (P, H) with 0 < P < H (torch's condition);  b_ih, b_hh (4H,) or both None.
H comes from W_hr's second dimension, P from its first. The outputs are h (T, B, P),
h_n (B, P) and c_n (B, H). The plain LSTM's checks (cells/args.py) assume one H for both
states, hence this module; what does not depend on the sizes is theirs (lengths, the
32-bit size limits, the array conversions).
"""
from typing import NamedTuple, Optional

import numpy as np

from fastbptt.cells.args import check_lengths, check_sizes, step_mask
from fastbptt.cells.spec import LSTMP, CellSpec
from fastbptt.runtime.validation import as_float_array, check_shape
from fastbptt.runtime.validation import check_finite as _check_finite


class ProjArgs(NamedTuple):
    """Validated, C-contiguous arguments of a projected LSTM: CellArgs' fields (with H the
    cell state's size), then W_hr and P. The checkpoint loop (cells/checkpoint.py)
    replaces x, h0, c0, lengths and T per segment, as it does for CellArgs."""
    spec: CellSpec                 # LSTMP
    x: np.ndarray                  # (T, B, I), or (B, T, I) when batch_first
    h0: np.ndarray                 # (B, P), zeros when the caller gave None
    c0: np.ndarray                 # (B, H)
    W_ih: np.ndarray               # (4H, I)
    W_hh: np.ndarray               # (4H, P)
    b_ih: np.ndarray               # (4H,), zeros when the caller gave None
    b_hh: np.ndarray               # (4H,)
    has_bias: bool
    batch_first: bool
    lengths: Optional[np.ndarray]  # (B,) intp in [0, T], or None: all T
    T: int
    B: int
    I: int
    H: int                         # c's size
    G: int                         # 4
    W_hr: np.ndarray               # (P, H)
    P: int                         # h's size
    # as CellArgs.steps (a checkpoint segment's whole call's T); the projected LSTM's step
    # form does not depend on it (it never packs), the segments carry it all the same
    steps: Optional[int] = None

    @property
    def dtype(self):
        return self.x.dtype

    @property
    def states(self):
        """The initial states (h0, c0)."""
        return (self.h0, self.c0)

    @property
    def state_sizes(self):
        """The sizes of h and c: (P, H)."""
        return (self.P, self.H)


def _state(name, value, B, n, described, dtype):
    if value is None:
        return np.zeros((B, n), dtype)
    value = as_float_array(name, value, 2, dtype, contiguous=False)
    check_shape(name, value, (B, n), described, "B from x, P and H from W_hr")
    return np.ascontiguousarray(value)


def check_forward_args(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh, batch_first, lengths=None,
                       check_finite=False):
    """Validate a projected LSTM's forward arguments (see the module docstring); returns
    ProjArgs. TypeError for a wrong type or dtype, ValueError for a wrong shape or value,
    naming the argument; with check_finite, ValueError on NaN or Inf (x only inside the
    lengths)."""
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be a bool, got {batch_first!r}")
    if not isinstance(check_finite, (bool, np.bool_)):
        raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
    x = as_float_array("x", x, 3, None, contiguous=False)
    dtype = x.dtype
    B, T, I = x.shape if batch_first else (x.shape[1], x.shape[0], x.shape[2])
    W_hr = as_float_array("W_hr", W_hr, 2, dtype, contiguous=False)
    P, H = W_hr.shape
    if not 0 < P < H:
        raise ValueError(f"W_hr must have shape (P, H) with 0 < P < H (torch's proj_size "
                         f"< hidden_size), got {W_hr.shape}")
    W_hh = as_float_array("W_hh", W_hh, 2, dtype, contiguous=False)
    check_shape("W_hh", W_hh, (4 * H, P), "(4*H, P)", "P and H from W_hr")
    W_ih = as_float_array("W_ih", W_ih, 2, dtype, contiguous=False)
    check_shape("W_ih", W_ih, (4 * H, I), "(4*H, I)", "H from W_hr, I from x")
    # the plain LSTM's limits hold every buffer here too (P < H)
    check_sizes(T, B, I, H, 4, 4)
    if (b_ih is None) != (b_hh is None):
        raise ValueError("b_ih and b_hh must both be given or both be None")
    has_bias = b_ih is not None
    if has_bias:
        b_ih = as_float_array("b_ih", b_ih, 1, dtype, contiguous=False)
        check_shape("b_ih", b_ih, (4 * H,), "(4*H,)", "H from W_hr")
        b_hh = as_float_array("b_hh", b_hh, 1, dtype, contiguous=False)
        check_shape("b_hh", b_hh, (4 * H,), "(4*H,)", "H from W_hr")
        b_ih, b_hh = np.ascontiguousarray(b_ih), np.ascontiguousarray(b_hh)
    else:
        b_ih = np.zeros(4 * H, dtype)
        b_hh = np.zeros(4 * H, dtype)
    h0 = _state("h0", h0, B, P, "(B, P)", dtype)
    c0 = _state("c0", c0, B, H, "(B, H)", dtype)
    lengths = check_lengths(lengths, B, T)
    contiguous = np.ascontiguousarray
    args = ProjArgs(LSTMP, contiguous(x), h0, c0, contiguous(W_ih), contiguous(W_hh), b_ih,
                    b_hh, has_bias, bool(batch_first), lengths, T, B, I, H, 4,
                    contiguous(W_hr), P)
    if check_finite:
        mask = step_mask(args)
        _check_finite("x", args.x, None if mask is None else (mask.T if batch_first else mask))
        for name in ("h0", "c0", "W_ih", "W_hh", "W_hr"):
            _check_finite(name, getattr(args, name))
        if has_bias:
            _check_finite("b_ih", b_ih)
            _check_finite("b_hh", b_hh)
    return args


def check_backward_args(dh, finals, args, check_finite=False):
    """dh (T, B, P) (or (B, T, P)) or None; finals (dh_n (B, P), dc_n (B, H)), each or
    None, at least one of the three given. Returns (dh, finals) validated, C-contiguous."""
    T, B, P, H, dtype = args.T, args.B, args.P, args.H, args.dtype
    if not isinstance(check_finite, (bool, np.bool_)):
        raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
    dh_n, dc_n = finals
    if dh is None and dh_n is None and dc_n is None:
        raise ValueError("give dh (a gradient at every step), dh_n and/or dc_n (at the "
                         "last step), or both; all were None")
    if dh is not None:
        dh = as_float_array("dh", dh, 3, dtype, contiguous=False)
        expected, described = ((B, T, P), "(B, T, P)") if args.batch_first \
            else ((T, B, P), "(T, B, P)")
        check_shape("dh", dh, expected, described,
                    "the forward output's shape: T and B from x, P from W_hr")
        dh = np.ascontiguousarray(dh)
    checked = []
    for name, value, n, described in (("dh_n", dh_n, P, "(B, P)"), ("dc_n", dc_n, H, "(B, H)")):
        if value is not None:
            value = as_float_array(name, value, 2, dtype, contiguous=False)
            check_shape(name, value, (B, n), described, "B from the forward's x, P and H "
                        "from W_hr")
            value = np.ascontiguousarray(value)
        checked.append(value)
    if check_finite:
        mask = step_mask(args)
        _check_finite("dh", dh, None if mask is None or dh is None
                      else (mask.T if args.batch_first else mask))
        _check_finite("dh_n", checked[0])
        _check_finite("dc_n", checked[1])
    return dh, tuple(checked)


def outputs_of_nothing(args):
    """The output of a problem with T or B zero: zeros (T, B, P) (or (B, T, P))."""
    T, B, P = args.T, args.B, args.P
    return np.zeros((B, T, P) if args.batch_first else (T, B, P), args.dtype)


def gradients_of_nothing(args, finals):
    """The gradients of a problem with T or B zero: the final states' gradients pass to
    the initial states unchanged, every other gradient is zero."""
    dtype, B = args.dtype, args.B
    carries = [np.zeros((B, n), dtype) if f is None else f.copy()
               for f, n in zip(finals, args.state_sizes)]
    GH = 4 * args.H
    db = (np.zeros(GH, dtype), np.zeros(GH, dtype)) if args.has_bias else (None, None)
    return LSTMP.grads(np.zeros(args.x.shape, dtype), *carries,
                       np.zeros((GH, args.I), dtype), np.zeros((GH, args.P), dtype), *db,
                       np.zeros((args.P, args.H), dtype))


def is_empty(args):
    """No step or no sequence (T or B zero; H >= 2 and P >= 1 by the checks)."""
    return 0 in (args.T, args.B)
