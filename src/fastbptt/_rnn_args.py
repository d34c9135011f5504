"""Validation of the vanilla RNN's arguments, shared by fastbptt.rnn and its reference."""
from dataclasses import dataclass

import numpy as np

from fastbptt._nonlinearity import nonlinearity_code
from fastbptt._validation import as_float_array, check_blas_size, check_shape


@dataclass(frozen=True)
class RNNArgs:
    """Validated, C-contiguous arguments of rnn_forward and their sizes."""
    x: np.ndarray          # (T, B, I), or (B, T, I) when batch_first
    h0: np.ndarray         # (B, H)
    W_ih: np.ndarray       # (H, I)
    W_hh: np.ndarray       # (H, H)
    b_ih: np.ndarray       # (H,), zeros when the caller gave None
    b_hh: np.ndarray       # (H,)
    has_bias: bool
    nonlinearity: str
    code: int
    batch_first: bool
    T: int
    B: int
    I: int
    H: int


def check_rnn_forward_args(x, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity, batch_first):
    code = nonlinearity_code(nonlinearity)
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be a bool, got {batch_first!r}")
    x = as_float_array("x", x, 3)
    dtype = x.dtype
    if batch_first:
        B, T, I = x.shape
        layout = "(B, T, I)"
    else:
        T, B, I = x.shape
        layout = "(T, B, I)"
    W_hh = as_float_array("W_hh", W_hh, 2, dtype)
    H = W_hh.shape[1]
    check_shape("W_hh", W_hh, (H, H), "(H, H)")
    W_ih = as_float_array("W_ih", W_ih, 2, dtype)
    if W_ih.shape != (H, I):
        raise ValueError(
            f"W_ih must have shape (H, I) = {(H, I)} (H from W_hh, I from x {layout} "
            f"= {x.shape}), got {W_ih.shape}"
        )
    if (b_ih is None) != (b_hh is None):
        raise ValueError("b_ih and b_hh must both be given or both be None")
    has_bias = b_ih is not None
    if has_bias:
        b_ih = as_float_array("b_ih", b_ih, 1, dtype)
        check_shape("b_ih", b_ih, (H,), "(H,)")
        b_hh = as_float_array("b_hh", b_hh, 1, dtype)
        check_shape("b_hh", b_hh, (H,), "(H,)")
    else:
        b_ih = b_hh = np.zeros(H, dtype)
    if h0 is None:
        h0 = np.zeros((B, H), dtype)
    else:
        h0 = as_float_array("h0", h0, 2, dtype)
        if h0.shape != (B, H):
            raise ValueError(
                f"h0 must have shape (B, H) = {(B, H)} (B from x {layout} = {x.shape}, "
                f"H from W_hh), got {h0.shape}"
            )
    check_blas_size(**{"T*B*I": T * B * I, "T*B*H": T * B * H})
    return RNNArgs(x, h0, W_ih, W_hh, b_ih, b_hh, has_bias, nonlinearity, code,
                   bool(batch_first), T, B, I, H)


def check_rnn_backward_args(dh, dh_n, T, B, H, dtype, batch_first):
    """dh (T, B, H) or (B, T, H) or None; dh_n (B, H) or None; not both None."""
    if dh is None and dh_n is None:
        raise ValueError("give dh (a gradient at every step), dh_n (at the last step), or both")
    if dh is not None:
        dh = as_float_array("dh", dh, 3, dtype)
        expected, described = ((B, T, H), "(B, T, H)") if batch_first else ((T, B, H), "(T, B, H)")
        check_shape("dh", dh, expected, described)
    if dh_n is not None:
        dh_n = as_float_array("dh_n", dh_n, 2, dtype)
        check_shape("dh_n", dh_n, (B, H), "(B, H)")
    return dh, dh_n
