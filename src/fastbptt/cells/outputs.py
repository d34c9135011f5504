"""What the compiled cells' wrappers (rnn.py, lstm.py, gru.py) share around their kernels:
the test that sends empty problems to the reference, the batch sizes whose per-step
product is per-row GEMVs, and the caller's output array made from the kernels'
time-major state buffer.
"""
import numpy as np

from fastbptt.cells import workspace as workspace
from fastbptt.cells.args import step_mask
from fastbptt._kernels.rnn import GEMV_ROWS_PER_STEP


def per_row_gemv(B):
    """Whether the kernels make a step's recurrent product as one GEMV per row (B up to
    recurrent_gemm.pxd's GEMV_ROWS), so that the transposed-GEMM form, and W_hh^T for
    it, is never used."""
    return B <= GEMV_ROWS_PER_STEP


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
