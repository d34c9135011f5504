"""The gradient records that backward functions return."""
from typing import NamedTuple, Optional

import numpy as np


class RNNGrads(NamedTuple):
    """Every gradient of a vanilla RNN's forward pass; unpacks like a tuple.

    dx (T, B, I) or (B, T, I) like x; dh0 (B, H); dW_ih (H, I); dW_hh (H, H);
    db_ih and db_hh (H,), None when the forward pass had no biases.
    """
    dx: np.ndarray
    dh0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class LSTMGrads(NamedTuple):
    """Every gradient of an LSTM's forward pass; unpacks like a tuple.

    dx like x; dh0 and dc0 (B, H); dW_ih (4*H, I); dW_hh (4*H, H); db_ih and db_hh
    (4*H,), None when the forward pass had no biases. Gate blocks in PyTorch's order
    i, f, g, o.
    """
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class GRUGrads(NamedTuple):
    """Every gradient of a GRU's forward pass; unpacks like a tuple.

    dx like x; dh0 (B, H); dW_ih (3*H, I); dW_hh (3*H, H); db_ih and db_hh (3*H,), None
    when the forward pass had no biases; gate blocks in PyTorch's order r, z, n. Unlike
    the other cells, db_ih and db_hh differ (b_hn sits inside the reset gate's product).
    """
    dx: np.ndarray
    dh0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]
