"""What the compiled cells' wrappers (rnn.py, lstm.py, gru.py) share around their kernels:
the test that sends empty problems to the reference and the caller's output array made
from the kernels' time-major state buffer.
"""
import numpy as np

from fastbptt import _workspace as workspace
from fastbptt._cell_args import step_mask


def is_empty(args):
    """Whether a validated problem (CellArgs) has a size 0. The kernels assume every size
    >= 1; an empty problem has nothing to compute and the reference defines its result."""
    return 0 in (args.T, args.B, args.I, args.H)


def outputs(hbuf, args):
    """The states h_1..h_T of hbuf (T+1, B, H) as the caller's new array, (T, B, H) or
    (B, T, H) batch-first, zero past each sequence's length."""
    h = hbuf[1:]
    if args.batch_first:
        h = h.transpose(1, 0, 2)
    out = workspace.empty(h.shape, h.dtype)
    np.copyto(out, h)
    h = out
    mask = step_mask(args)   # (T, B)
    if mask is not None:
        h[~(mask.T if args.batch_first else mask)] = 0
    return h
