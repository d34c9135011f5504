"""The gradient record that the fused output heads return."""
from typing import NamedTuple, Optional

import numpy as np


class HeadGrads(NamedTuple):
    """The gradients of a fused output head and loss, a named tuple (unpacks like a tuple).

    Attributes
    ----------
    dh : ndarray, shape like h (..., H)
        dL/dh, into the cell's backward (``dh``, or ``dh_n`` for a loss on the last state).
    dW : ndarray, shape (V, H)
    db : ndarray, shape (V,), or None
        None when the head had no bias. All of h's dtype.
    """
    dh: np.ndarray
    dW: np.ndarray
    db: Optional[np.ndarray]
