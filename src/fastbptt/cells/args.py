"""Validation of the recurrent cells' arguments, shared by the compiled driver and the
reference twins of rnn, lstm and gru (pure Python: the reference imports it).

A cell with G gates (CellSpec.gates: rnn 1, gru 3, lstm 4) takes
    x (T, B, I), or (B, T, I) when batch_first;  h0 (B, H) (and c0 (B, H) for lstm);
    W_ih (G*H, I);  W_hh (G*H, H);  b_ih, b_hh (G*H,) or both None;
    lengths (B,) of ints in [0, T], or None (every sequence T steps long).
H comes from W_hh's second dimension, I and B and T from x.
"""
from typing import NamedTuple, Optional

import numpy as np

from fastbptt.cells.spec import CellSpec, nonlinearity_code
from fastbptt.runtime import validation as _validation
from fastbptt.runtime.validation import as_float_array, check_blas_size, check_shape
from fastbptt.runtime.validation import check_finite as _check_finite


class CellArgs(NamedTuple):
    """Validated, C-contiguous arguments of a cell's forward function and their sizes.
    (A NamedTuple rather than a frozen dataclass: as immutable, and built in a third of
    the time, which counts in the fixed cost of a call.)"""
    spec: CellSpec                 # which cell
    x: np.ndarray                  # (T, B, I), or (B, T, I) when batch_first
    h0: np.ndarray                 # (B, H), zeros when the caller gave None
    c0: Optional[np.ndarray]       # (B, H) for lstm (zeros when None), else None
    W_ih: np.ndarray               # (G*H, I)
    W_hh: np.ndarray               # (G*H, H)
    b_ih: np.ndarray               # (G*H,), zeros when the caller gave None
    b_hh: np.ndarray               # (G*H,)
    has_bias: bool
    batch_first: bool
    lengths: Optional[np.ndarray]  # (B,) intp in [0, T], or None: all T
    T: int
    B: int
    I: int
    H: int
    G: int
    nonlinearity: Optional[str] = None   # rnn only
    code: int = 0                        # rnn only: spec.nonlinearity_code
    # the steps the step form is chosen for (spec.step_form): None, T; a checkpoint segment
    # carries its whole call's T, so that it makes the whole call's per-step products
    steps: Optional[int] = None

    @property
    def dtype(self):
        return self.x.dtype

    @property
    def cell(self):
        return self.spec.name

    @property
    def states(self):
        """The initial states, in spec.states order: (h0,) or (h0, c0)."""
        return (self.h0,) if self.c0 is None else (self.h0, self.c0)


def check_lengths(lengths, B, T):
    """lengths as a C-contiguous (B,) intp array with 0 <= lengths[b] <= T, or None."""
    if lengths is None:
        return None
    try:
        arr = np.asarray(lengths)
    except Exception as exc:
        raise TypeError(f"lengths must be an array of ints, got {type(lengths).__name__}") from exc
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must have an integer dtype, got {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = {(B,)} (B from x), got {arr.shape}")
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(
            f"lengths must lie in [0, T] = [0, {T}] (T from x), got values from "
            f"{arr.min()} to {arr.max()}"
        )
    return np.ascontiguousarray(arr, dtype=np.intp)


def _check_state(name, value, B, H, dtype, layout, x_shape):
    if value is None:
        return np.zeros((B, H), dtype)
    value = as_float_array(name, value, 2, dtype, contiguous=False)
    if value.shape != (B, H):
        raise ValueError(
            f"{name} must have shape (B, H) = {(B, H)} (B from x {layout} = {x_shape}, "
            f"H from W_hh), got {value.shape}"
        )
    return value


def check_sizes(T, B, I, H, G, Gw):
    """Refuse a problem whose buffers BLAS's (and the kernels') 32-bit ints cannot index,
    computed in Python ints before anything is copied or allocated: x (T*B, I), the gate
    workspaces (T*B, G'*H) with G' = Gw = spec.work_gates (4 for the GRU: its [r z n R_n]
    rows), W_ih (G*H, I) and W_hh (G*H, H). Every int the kernels form (T*B, T*G'*H,
    B*G'*H, leading dimensions) is at most one of these."""
    # the common case in one comparison (the named checks below build their messages)
    if max(T, B, I, H, T * B * max(I, Gw * H), G * H * max(I, H)) <= _validation._BLAS_INT_MAX:
        return
    # each size on its own too: the kernels hold T, B, I, H in C ints (an empty problem
    # with a huge T would still be refused here rather than looped over)
    check_blas_size(T=T, B=B, I=I, H=H)
    check_blas_size(**{"T*B*I": T * B * I, f"T*B*{Gw}*H": T * B * Gw * H,
                       f"{G}*H*I": G * H * I, f"{G}*H*H": G * H * H})


def check_forward_args(spec, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, lengths=None,
                       check_finite=False, nonlinearity=None):
    """Validate a cell's forward arguments (states: the initial states in spec.states
    order, each an array or None for zeros); returns CellArgs. Raises TypeError for a
    wrong type or dtype, ValueError for a wrong shape or value, naming the argument.
    With check_finite, ValueError if an argument holds NaN or Inf (x only at the steps
    inside each sequence's length: padding never matters)."""
    G = spec.gates
    code = nonlinearity_code(nonlinearity) if "nonlinearity" in spec.options else 0
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be a bool, got {batch_first!r}")
    if not isinstance(check_finite, (bool, np.bool_)):
        raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
    # Shapes and dtypes first, on the caller's arrays as they are (views, broadcasts):
    # nothing is copied or allocated until check_sizes has passed.
    x = as_float_array("x", x, 3, None, contiguous=False)
    dtype = x.dtype
    if batch_first:
        B, T, I = x.shape
        layout = "(B, T, I)"
    else:
        T, B, I = x.shape
        layout = "(T, B, I)"
    W_hh = as_float_array("W_hh", W_hh, 2, dtype, contiguous=False)
    H = W_hh.shape[1]
    gh = "(H, H)" if G == 1 else f"({G}*H, H)"
    check_shape("W_hh", W_hh, (G * H, H), gh)
    W_ih = as_float_array("W_ih", W_ih, 2, dtype, contiguous=False)
    if W_ih.shape != (G * H, I):
        gi = "(H, I)" if G == 1 else f"({G}*H, I)"
        raise ValueError(
            f"W_ih must have shape {gi} = {(G * H, I)} (H from W_hh, I from x {layout} "
            f"= {x.shape}), got {W_ih.shape}"
        )
    # before anything of these sizes is allocated (the zero states below included)
    check_sizes(T, B, I, H, G, spec.work_gates)
    if (b_ih is None) != (b_hh is None):
        raise ValueError("b_ih and b_hh must both be given or both be None")
    has_bias = b_ih is not None
    gb = "(H,)" if G == 1 else f"({G}*H,)"
    if has_bias:
        b_ih = as_float_array("b_ih", b_ih, 1, dtype, contiguous=False)
        check_shape("b_ih", b_ih, (G * H,), gb, "H from W_hh")
        b_hh = as_float_array("b_hh", b_hh, 1, dtype, contiguous=False)
        check_shape("b_hh", b_hh, (G * H,), gb, "H from W_hh")
    # (written out rather than as loops over spec.states: this runs on every call, and
    # at the smallest sizes its Python is most of the call's cost)
    names = spec.initial_states
    h0 = _check_state(names[0], states[0], B, H, dtype, layout, x.shape)
    c0 = _check_state(names[1], states[1], B, H, dtype, layout, x.shape) if names[1:] else None
    lengths = check_lengths(lengths, B, T)
    contiguous = np.ascontiguousarray
    x, h0, W_ih, W_hh = contiguous(x), contiguous(h0), contiguous(W_ih), contiguous(W_hh)
    if has_bias:
        b_ih, b_hh = contiguous(b_ih), contiguous(b_hh)
    else:
        b_ih = np.zeros(G * H, dtype)
        b_hh = np.zeros(G * H, dtype)
    if c0 is not None:
        c0 = contiguous(c0)
    args = CellArgs(spec, x, h0, c0, W_ih, W_hh, b_ih, b_hh, has_bias, bool(batch_first),
                    lengths, T, B, I, H, G, nonlinearity, code)
    if check_finite:
        mask = step_mask(args)
        _check_finite("x", x, None if mask is None else (mask.T if batch_first else mask))
        for name, value in (("h0", h0), ("c0", c0), ("W_ih", W_ih), ("W_hh", W_hh)):
            _check_finite(name, value)
        if has_bias:
            _check_finite("b_ih", b_ih)
            _check_finite("b_hh", b_hh)
    return args


def check_backward_args(dh, finals, args, check_finite=False):
    """dh like forward's output or None; finals: the final states' gradients in
    args.spec.final_grads order ((dh_n,) or (dh_n, dc_n)), each (B, H) or None. At least
    one must be given. Returns (dh, finals) validated. With check_finite, ValueError if
    one holds NaN or Inf (dh only inside the lengths)."""
    T, B, H, dtype = args.T, args.B, args.H, args.dtype
    if not isinstance(check_finite, (bool, np.bool_)):
        raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
    if dh is None:
        for f in finals:   # (not finals.count(None): == on an array is elementwise)
            if f is not None:
                break
        else:
            last = " and/or ".join(args.spec.final_grads)
            raise ValueError(f"give dh (a gradient at every step), {last} (at the last "
                             f"step), or both; all were None")
    if dh is not None:
        dh = as_float_array("dh", dh, 3, dtype, contiguous=False)
        expected, described = (((B, T, H), "(B, T, H)") if args.batch_first
                               else ((T, B, H), "(T, B, H)"))
        check_shape("dh", dh, expected, described,
                    "the forward output's shape: T and B from x, H from W_hh")
    checked = []
    for name, value in zip(args.spec.final_grads, finals):
        if value is not None:
            value = as_float_array(name, value, 2, dtype, contiguous=False)
            check_shape(name, value, (B, H), "(B, H)", "B from the forward's x, H from W_hh")
            value = np.ascontiguousarray(value)   # (B, H): its size is known to be right
        checked.append(value)
    finals = tuple(checked)
    # copied only now that its shape (and so its size) is known to be right
    dh = None if dh is None else np.ascontiguousarray(dh)
    if check_finite:
        mask = step_mask(args)
        _check_finite("dh", dh, None if mask is None or dh is None
                      else (mask.T if args.batch_first else mask))
        for name, value in zip(args.spec.final_grads, finals):
            _check_finite(name, value)
    return dh, finals


def step_mask(args):
    """(T, B) bool, True where step t is inside sequence b (t < lengths[b]); None when
    lengths is None (every step of every sequence counts)."""
    if args.lengths is None:
        return None
    return np.arange(args.T)[:, None] < args.lengths[None, :]


def x_for_weight_grads(args):
    """x for dW_ih = dA^T X: x itself, or, when some step lies past a sequence's length,
    a copy with those steps zeroed. dA is zero there, but 0 * NaN = NaN in the GEMM, so
    NaN or Inf padding in x would leak into dW_ih; padding must never affect a result.
    Costs one copy of x, and only when lengths cut some sequence short."""
    if args.lengths is None or args.B == 0 or args.lengths.min() >= args.T:
        return args.x
    mask = step_mask(args)
    x = args.x.copy()
    x[~(mask.T if args.batch_first else mask)] = 0
    return x


def is_empty(args):
    """Whether a validated problem (CellArgs) has nothing to compute: no step, no
    sequence or no state (T, B or H zero). Its outputs are zeros, its final states its
    initial ones. (I = 0 is not empty: the recurrence still runs on the biases.)"""
    return 0 in (args.T, args.B, args.H)
