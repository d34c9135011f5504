"""The gradient record that the fused output heads return."""
from typing import NamedTuple, Optional

import numpy as np


class HeadGrads(NamedTuple):
    """The gradients of a fused output head and loss (fastbptt.losses); unpacks like a tuple.

    dh shaped like h (..., H); dW (V, H); db (V,), None when the head had no bias. All of
    h's dtype.
    """
    dh: np.ndarray
    dW: np.ndarray
    db: Optional[np.ndarray]
