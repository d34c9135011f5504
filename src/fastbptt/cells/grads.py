"""The gradient records that backward functions return."""
from typing import NamedTuple, Optional

import numpy as np


class RNNGrads(NamedTuple):
    """Every gradient of a vanilla RNN's forward pass, a named tuple (unpacks like a tuple).

    Attributes
    ----------
    dx : ndarray
        dL/dx, shaped like x ((T, B, I), or (B, T, I) batch-first).
    dh0 : ndarray, shape (B, H)
        dL/dh0.
    dW_ih : ndarray, shape (H, I)
    dW_hh : ndarray, shape (H, H)
        The weights' gradients, summed over all steps.
    db_ih, db_hh : ndarray, shape (H,), or None
        The biases' gradients; None when the forward pass had no biases.
    """
    dx: np.ndarray
    dh0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class LSTMGrads(NamedTuple):
    """Every gradient of an LSTM's forward pass, a named tuple (unpacks like a tuple).

    Attributes
    ----------
    dx : ndarray
        dL/dx, shaped like x ((T, B, I), or (B, T, I) batch-first).
    dh0 : ndarray, shape (B, H)
        dL/dh0.
    dc0 : ndarray, shape (B, H)
        dL/dc0.
    dW_ih : ndarray, shape (4H, I)
    dW_hh : ndarray, shape (4H, H)
        The weights' gradients, summed over all steps.
    db_ih, db_hh : ndarray, shape (4H,), or None
        The biases' gradients; None when the forward pass had no biases. Gate blocks i, f, g, o.
    """
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class LSTMPGrads(NamedTuple):
    """Every gradient of an LSTM with a projection (``lstm_forward(..., W_hr=)``), a named
    tuple: LSTMGrads' fields, then ``dW_hr``.

    Attributes
    ----------
    dx : ndarray
        dL/dx, shaped like x ((T, B, I), or (B, T, I) batch-first).
    dh0 : ndarray, shape (B, P)
        dL/dh0 (the projected hidden state).
    dc0 : ndarray, shape (B, H)
        dL/dc0.
    dW_ih : ndarray, shape (4H, I)
    dW_hh : ndarray, shape (4H, P)
        The weights' gradients, summed over all steps.
    db_ih, db_hh : ndarray, shape (4H,), or None
        The biases' gradients; None when the forward pass had no biases.
    dW_hr : ndarray, shape (P, H)
        The projection's gradient, summed over all steps.
    """
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]
    dW_hr: np.ndarray


class GRUGrads(NamedTuple):
    """Every gradient of a GRU's forward pass, a named tuple (unpacks like a tuple).

    Attributes
    ----------
    dx : ndarray
        dL/dx, shaped like x ((T, B, I), or (B, T, I) batch-first).
    dh0 : ndarray, shape (B, H)
        dL/dh0.
    dW_ih : ndarray, shape (3H, I)
    dW_hh : ndarray, shape (3H, H)
        The weights' gradients, summed over all steps.
    db_ih, db_hh : ndarray, shape (3H,), or None
        The biases' gradients; None when the forward pass had no biases. Gate blocks r, z,
        n; unlike the other cells, ``db_ih`` and ``db_hh`` differ (``b_hn`` sits inside the
        reset gate's product).
    """
    dx: np.ndarray
    dh0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]
