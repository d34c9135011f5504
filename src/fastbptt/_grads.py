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
