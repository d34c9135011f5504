"""The compiled LSTM with a projection: what lstm_forward / lstm_backward run when W_hr is
given (the equations and shapes: cells/projection.py; the time loops: _kernels/lstmp.pyx).

The same steps as the driver's (validate -> empty problem -> checkpoint loop -> allocate
-> kernel -> cache), on the projected shapes: the hidden state h (B, P) and the cell
state c (B, H) differ in size, which the driver's buffers (every state (B, H)) do not
allow. The driver's size-independent helpers (the outputs, the I = 0 column and its
gradients, the scratch) are reused. Nothing numeric happens here.
"""
from typing import NamedTuple

import numpy as np

from fastbptt._kernels import lstmp as _kernel
from fastbptt.cells import projection, workspace
from fastbptt.cells.args import x_for_weight_grads
from fastbptt.cells.cache import CellCache
from fastbptt.cells.checkpoint import (
    CheckpointCache,
    checkpoint_backward,
    checkpoint_forward,
    segment_length,
)
from fastbptt.cells.driver import (
    EmptyCache,
    _outputs,
    _with_an_input_column,
    input_gradients,
    scratch,
)
from fastbptt.cells.spec import LSTMP as SPEC
from fastbptt.cells.spec import step_form


class ProjectedCache(CellCache):
    """What the compiled projected backward needs from its forward; opaque but for h_n
    (B, P) and c_n (B, H). Keeps references to x and the weights."""
    __slots__ = ("args", "states", "kept", "form", "no_input")
    backend = "compiled"

    def __init__(self, args, states, kept, form, no_input):
        self.args = args           # ProjArgs as the kernels ran (I >= 1)
        self.states = states       # [hbuf (T+1, B, P), cbuf (T+1, B, H)], [0] the initial
        self.kept = kept           # [gates (T*B, 4H) activated, mbuf (T, B, H)]
        self.form = form           # the step form of h_{t-1} W_hh^T (spec.step_form)
        self.no_input = no_input   # the caller's x had I = 0

    @property
    def spec(self):
        return SPEC

    def final_states(self):
        return tuple(s[-1] for s in self.states)


class ProjBuffers(NamedTuple):
    """The arrays lstmp_backward fills or works in."""
    dA: np.ndarray       # (T*B, 4H) the gate pre-activation gradients, in x's row order
    dX: np.ndarray       # (T*B, I)
    dW_ih: np.ndarray    # (4H, I)
    dW_hh: np.ndarray    # (4H, P)
    db: np.ndarray       # (4H,)
    W_hhT: object        # (P, 4H) when the step runs transposed, else None
    scratch: object      # (P*B,) when the step runs transposed, else None
    hold: object         # (B, P) with lengths, else None
    dH: np.ndarray       # (T, B, P) dL/dh_t, time-major
    dm: np.ndarray       # (B, H) dL/dm_t of one step
    dW_hr: np.ndarray    # (P, H)


def forward(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh, batch_first, lengths, check_finite,
            checkpoint):
    """The compiled projected forward; returns (h (T, B, P) or (B, T, P), cache)."""
    args = projection.check_forward_args(x, h0, c0, W_ih, W_hh, W_hr, b_ih, b_hh,
                                         batch_first, lengths, check_finite=check_finite)
    k = segment_length(checkpoint, args.T)
    if projection.is_empty(args):
        return projection.outputs_of_nothing(args), EmptyCache(args)
    if k is not None:
        return checkpoint_forward(args, k, run_forward, run_backward, "compiled")
    return run_forward(args)


def backward(dh, cache, finals, check_finite):
    """The compiled projected backward; returns LSTMPGrads."""
    kind = type(cache)
    if kind is CheckpointCache:
        return checkpoint_backward(dh, cache, finals, check_finite=check_finite,
                                   check_args=projection.check_backward_args)
    dh, finals = projection.check_backward_args(dh, finals, cache.args,
                                                check_finite=check_finite)
    if kind is EmptyCache:
        return projection.gradients_of_nothing(cache.args, finals)
    return run_backward(dh, cache, finals)


def run_forward(args):
    """The plain forward of validated, non-empty ProjArgs: (h, ProjectedCache)."""
    T, B, H, P, dtype = args.T, args.B, args.H, args.P, args.dtype
    hbuf = workspace.empty((T + 1, B, P), dtype)
    cbuf = workspace.empty((T + 1, B, H), dtype)
    hbuf[0] = args.h0
    cbuf[0] = args.c0
    mbuf = workspace.empty((T, B, H), dtype)
    gates = workspace.empty((T * B, 4 * H), dtype)
    form = step_form(SPEC, B, P, dtype)
    run_args = _with_an_input_column(args) if args.I == 0 else args
    _kernel.lstmp_forward(X=run_args.x.reshape(T * B, run_args.I),
                          bias=SPEC.bias_rows(args.b_ih, args.b_hh, H), gates=gates,
                          hbuf=hbuf, cbuf=cbuf, mbuf=mbuf,
                          scratch=scratch(4 * H * B, dtype, form), args=run_args,
                          transposed_step=form == "transposed")
    return (_outputs(hbuf, args),
            ProjectedCache(run_args, [hbuf, cbuf], [gates, mbuf], form, args.I == 0))


def run_backward(dh, cache, finals):
    """The plain backward of validated arguments, from a ProjectedCache: LSTMPGrads."""
    args = cache.args
    T, B, I, H, P, dtype = args.T, args.B, args.I, args.H, args.P, args.dtype
    GH = 4 * H
    transposed = cache.form == "transposed"
    carries = [np.zeros((B, n), dtype) if f is None else f.copy()
               for f, n in zip(finals, (P, H))]
    work = ProjBuffers(
        workspace.empty((T * B, GH), dtype),                           # dA
        workspace.empty((T * B, I), dtype),                            # dX
        workspace.empty((GH, I), dtype),                               # dW_ih
        workspace.empty((GH, P), dtype),                               # dW_hh
        np.empty(GH, dtype),                                           # db
        workspace.empty((P, GH), dtype) if transposed else None,       # W_hhT
        np.empty(P * B, dtype) if transposed else None,                # scratch
        None if args.lengths is None else np.empty((B, P), dtype),     # hold
        workspace.empty((T, B, P), dtype),                             # dH
        np.empty((B, H), dtype),                                       # dm
        workspace.empty((P, H), dtype),                                # dW_hr
    )
    X = (args.x if args.lengths is None else x_for_weight_grads(args)).reshape(T * B, I)
    _kernel.lstmp_backward(X=X, dh=None if dh is None else dh.reshape(T * B, P),
                           states=cache.states, kept=cache.kept, carries=carries, args=args,
                           work=work, transposed_step=transposed)
    dx, dW_ih = input_gradients(cache, work)
    db_ih, db_hh = SPEC.split_db(work.db, H) if args.has_bias else (None, None)
    return SPEC.grads(dx, *carries, dW_ih, work.dW_hh, db_ih, db_hh, work.dW_hr)
