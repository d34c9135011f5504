"""The one compiled wrapper of every cell: validate -> empty problem -> checkpoint loop ->
allocate -> kernel -> cache.

The public functions (fastbptt.rnn_forward, lstm_backward, ...) are thin signatures in the
per-cell adapters (cells/rnn.py, lstm.py, gru.py) that call `forward` and `backward` here
with their CellSpec. What differs between cells in the forward is delegated to the
adapter's one function that calls a kernel:

    run_forward_kernel(args, states, form) -> kept
        states: the state buffers (T+1, B, H) each, in spec.states order, [0] filled with
        the initial states; the kernel fills [1:]. Returns what backward needs beside the
        states (for example the activated gates).

The backward kernels take one signature, called here directly (an adapter frame less on
every call): <cell>_backward(X=, dh=, states=, kept=, carries=, args=, work=,
transposed_step=, packed=). X: x with its padding zeroed (x_for_weight_grads); dh (T*B, H) or None;
states and kept as the forward left them; carries (B, H) each, the final states'
gradients on entry and the initial states' on exit; args the CellArgs; work the
BackwardBuffers below.

Allocation: every array of 1 MiB or more comes from the thread's recycled buffers
(cells/workspace.py), so a call faults in no fresh pages. Nothing numeric happens here.

Two paths, one behaviour. At small sizes the fixed cost of a call is the whole cost, and
most of it was the Python of the checks and the argument passing (issue 14). So
`forward`, `backward` and `step` first offer the call to the compiled fast path
(cells/_fastpath.pyx). It handles the common case only: every array an exact ndarray,
C-contiguous, aligned, native float32 or float64, of the right dimensions and shapes; T,
B, I, H >= 1 within the 32-bit limits; no lengths, no checkpoint, check_finite off,
batch_first a bool; in backward a CompiledCache of the same spec. For it, the fast path
does in C what the general path below does in Python: the same CellArgs, the same
buffers (from the workspace from MIN_BYTES up), the same step form and bias rows, the
same time loops (called at their C entry points, <cell>_forward_loop /
<cell>_backward_loop, with no memoryview to acquire per buffer), the same cache and
Grads, bit for bit. Anything else, a wrong argument included, makes it return None, and
the general path runs and raises with its messages: the fast path only ever decides "all
is fine", so no message lives in two places. It reads the driver's step_form,
workspace.MIN_BYTES and validation._BLAS_INT_MAX at each call (tests replace them).
tests/test_fastpath.py holds the two paths together. A new check goes into both: into
the general path (cells/args.py), with its message, and into the fast path as a
condition under which it returns None (CONTRIBUTING.md, "Adding a check").
"""
import importlib
from typing import NamedTuple

import numpy as np

from fastbptt.cells import _fastpath, batch_split, workspace
from fastbptt.cells.args import (
    CellArgs,
    check_backward_args,
    check_forward_args,
    is_empty,
    step_mask,
    x_for_weight_grads,
)
from fastbptt.cells.batch_split import SplitCache
from fastbptt.cells.cache import CellCache
from fastbptt.cells.checkpoint import (
    CheckpointCache,
    checkpoint_backward,
    checkpoint_forward,
    segment_length,
)
from fastbptt.cells.spec import NONLINEARITY_CODES, SPECS, step_form
from fastbptt.runtime import validation
from fastbptt.runtime.packing import packer

_adapters = {}   # CellSpec -> its adapter module, imported once
_backward_kernels = {}   # CellSpec -> its compiled backward, looked up once


def _adapter(spec):
    try:
        return _adapters[spec]
    except KeyError:
        module = _adapters[spec] = importlib.import_module(spec.adapter)
        return module


def _backward_kernel(spec):
    try:
        return _backward_kernels[spec]
    except KeyError:
        kernel = _backward_kernels[spec] = getattr(importlib.import_module(spec.kernel),
                                                   spec.backward_name)
        return kernel


class CompiledCache(CellCache):
    """What the compiled backward needs from the compiled forward. Opaque to callers but
    for h_n (and c_n). It keeps references to x and the weights (do not modify them in
    place between forward and backward) and its own copy of every state."""
    __slots__ = ("args", "states", "kept", "form", "no_input")
    backend = "compiled"

    def __init__(self, args, states, kept, form, no_input):
        self.args = args       # validated CellArgs (C-contiguous arrays) as the kernels ran
        self.no_input = no_input   # the caller's x had I = 0 (_with_an_input_column)
        self.states = states   # (T+1, B, H) each, [0] the initial state, [t] = state t
        #                        (carried unchanged past a sequence's length)
        self.kept = kept       # what the adapter's forward kept for backward
        self.form = form       # the per-step product's form (spec.step_form)

    @property
    def spec(self):
        return self.args.spec

    def final_states(self):
        return tuple(s[-1] for s in self.states)


class EmptyCache(CellCache):
    """The cache of a problem with T, B or H zero: nothing ran, nothing is kept."""
    __slots__ = ("args",)
    backend = "compiled"

    def __init__(self, args):
        self.args = args

    @property
    def spec(self):
        return self.args.spec

    def final_states(self):
        return self.args.states


class BackwardBuffers(NamedTuple):
    """The arrays a backward kernel fills or works in (G = spec.gates, Gw = spec.work_gates)."""
    dA: np.ndarray       # (T*B, Gw*H) the gate pre-activation gradients, in x's row order
    dX: np.ndarray       # (T*B, I)
    dW_ih: np.ndarray    # (G*H, I)
    dW_hh: np.ndarray    # (G*H, H)
    db: np.ndarray       # (Gw*H,) the column sums of dA
    W_hhT: object        # (H, G*H) when the step runs transposed, else None
    scratch: object      # (H*B,) when the step runs transposed, else None
    hold: object         # (B, H) with lengths (the ended rows' carries), else None


def forward(spec, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, lengths, check_finite,
            checkpoint, nonlinearity=None):
    """The compiled forward of any cell; returns (h, cache)."""
    done = _fastpath.forward(spec, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                             check_finite, checkpoint, nonlinearity)
    if done is not None:   # the common case, checked and run in C
        return done
    args = check_forward_args(spec, x, states, W_ih, W_hh, b_ih, b_hh, batch_first, lengths,
                              check_finite=check_finite, nonlinearity=nonlinearity)
    k = segment_length(checkpoint, args.T)
    if is_empty(args):
        return _outputs_of_nothing(args), EmptyCache(args)
    if k is not None:
        return checkpoint_forward(args, k, run_forward, run_backward, "compiled")
    return run_forward(args)


def backward(spec, dh, cache, finals, check_finite):
    """The compiled backward of any cell; returns the spec's Grads record."""
    done = _fastpath.backward(spec, dh, cache, finals, check_finite)
    if done is not None:   # the common case, checked and run in C
        return done
    kind = type(cache)
    if kind is CompiledCache and cache.args.spec is spec:   # the common case first
        dh, finals = check_backward_args(dh, finals, cache.args, check_finite=check_finite)
        return run_backward(dh, cache, finals)
    if kind is CheckpointCache and cache.spec is spec:
        return checkpoint_backward(dh, cache, finals, check_finite=check_finite)
    if kind is EmptyCache and cache.spec is spec:
        dh, finals = check_backward_args(dh, finals, cache.args, check_finite=check_finite)
        return _gradients_of_nothing(cache.args, finals)
    if kind is SplitCache and cache.spec is spec:
        dh, finals = check_backward_args(dh, finals, cache.args, check_finite=check_finite)
        return run_backward(dh, cache, finals)
    raise TypeError(
        f"cache must come from fastbptt.{spec.forward_name}, got {type(cache).__name__}")


def step(spec, x, states, W_ih, W_hh, b_ih, b_hh, nonlinearity=None):
    """One time step of any cell for streaming inference, keeping nothing for a backward:
    x (1, B, I), states the initial states (B, H) each or None, in spec.states order.
    Returns a list of the new states (B, H) each, new arrays: forward's final states at T = 1
    (its reference twin is the reference forward's cache.final_states())."""
    done = _fastpath.step(spec, x, states, W_ih, W_hh, b_ih, b_hh, nonlinearity)
    if done is not None:   # the common case, checked and run in C
        return done
    args = check_forward_args(spec, x, states, W_ih, W_hh, b_ih, b_hh, False,
                              nonlinearity=nonlinearity)
    if args.T != 1:
        raise ValueError(f"x must hold one time step, shape (1, B, I), got {args.x.shape}")
    if is_empty(args):
        return [s.copy() for s in args.states]
    _, buffers, _, _ = _run_kernel(args)
    return [buf[1] for buf in buffers]


def _run_kernel(args):
    """The forward kernel on validated, non-empty arguments: (the arguments it ran with,
    the state buffers (T+1, B, H) each, what it kept for backward, the step form)."""
    T, B, H = args.T, args.B, args.H
    dtype = args.dtype
    states = []
    for initial in args.states:
        buf = workspace.empty((T + 1, B, H), dtype)
        buf[0] = initial
        states.append(buf)
    # the number of steps is the policy's too: packing is paid once per call (never for
    # one step, which is what driver.step and the Stepper run); a checkpoint segment asks
    # for its whole call's steps (args.steps), so it makes the same products as the call
    form = step_form(args.spec, B, H, dtype, packer(), T if args.steps is None else args.steps)
    run_args = _with_an_input_column(args) if args.I == 0 else args
    kept = _adapter(args.spec).run_forward_kernel(run_args, states, form)
    return run_args, states, kept, form


def run_forward(args):
    """The plain forward of validated, non-empty arguments: (h, CompiledCache); or, with
    two or more BLAS threads on a large enough batch, the batch split's (h, SplitCache)
    (cells/batch_split.py, which runs this on each block of rows)."""
    bounds = batch_split.blocks(args)
    if bounds is not None:
        return batch_split.forward(args, bounds, run_forward)
    run_args, states, kept, form = _run_kernel(args)
    return (_outputs(states[0], args),
            CompiledCache(run_args, states, kept, form, args.I == 0))


def run_backward(dh, cache, finals):
    """The plain backward of validated arguments, from a CompiledCache (or a SplitCache:
    batch_split runs this on each block's cache): the Grads record."""
    if type(cache) is SplitCache:
        return batch_split.backward(dh, cache, finals, run_backward)
    args = cache.args
    spec = args.spec
    T, B, I, H = args.T, args.B, args.I, args.H
    dtype = args.dtype
    GH, GwH = spec.gates * H, spec.work_gates * H
    transposed = cache.form == "transposed"
    carries = _carries(finals, B, H, dtype)
    # positional: a NamedTuple built by keyword costs twice as much, on every call
    work = BackwardBuffers(
        workspace.empty((T * B, GwH), dtype),                                 # dA
        workspace.empty((T * B, I), dtype),                                   # dX
        workspace.empty((GH, I), dtype),                                      # dW_ih
        workspace.empty((GH, H), dtype),                                      # dW_hh
        np.empty(GwH, dtype),                                                 # db
        workspace.empty((H, GH), dtype) if transposed else None,              # W_hhT
        np.empty(H * B, dtype) if transposed else None,                       # scratch
        None if args.lengths is None else np.empty((B, H), dtype),            # hold
    )
    X = (args.x if args.lengths is None else x_for_weight_grads(args)).reshape(T * B, I)
    _backward_kernel(spec)(X=X, dh=None if dh is None else dh.reshape(T * B, H),
                           states=cache.states, kept=cache.kept, carries=carries, args=args,
                           work=work, transposed_step=transposed,
                           packed=cache.form == "packed")
    dx, dW_ih = input_gradients(cache, work)
    db_ih, db_hh = spec.split_db(work.db, H) if args.has_bias else (None, None)
    return spec.grads(dx, *carries, dW_ih, work.dW_hh, db_ih, db_hh)


def input_gradients(cache, work):
    """(dx, dW_ih) of a backward from its buffers: the kernel's dX reshaped like x and its
    dW_ih, or zeros of the caller's shapes when the caller's x had I = 0 (the zero input
    column of _with_an_input_column is not the caller's)."""
    args = cache.args
    if cache.no_input:
        return (np.zeros(args.x.shape[:-1] + (0,), args.dtype),
                np.zeros((work.dW_ih.shape[0], 0), args.dtype))
    return work.dX.reshape(args.x.shape), work.dW_ih


def scratch(size, dtype, form):
    """The kernels' scratch (size,) for the transposed per-step product, which only that
    form reads; None otherwise (an allocation less per call)."""
    return np.empty(size, dtype) if form == "transposed" else None


def _carries(finals, B, H, dtype):
    """The backward kernels' carried state gradients (B, H) each, written in place: the
    final states' gradients (copies) or zeros where None."""
    carries = []
    for f in finals:   # a loop, not a comprehension: cheaper in Python 3.11
        carries.append(np.zeros((B, H), dtype) if f is None else f.copy())
    return carries


def _with_an_input_column(args):
    """A problem with no input features (I = 0) still runs its recurrence over T steps
    (the pre-activations are the biases plus h W_hh^T). The kernels need I >= 1, so it
    runs with one zero input column and zero weights for it: the same numbers."""
    shape = args.x.shape[:-1] + (1,)
    return args._replace(x=np.zeros(shape, args.dtype),
                         W_ih=np.zeros((args.W_ih.shape[0], 1), args.dtype), I=1)


def _outputs(hbuf, args):
    """The states h_1..h_T of hbuf (T+1, B, H) as the caller's new array, (T, B, H) or
    (B, T, H) batch-first, zero past each sequence's length."""
    h = hbuf[1:]
    if args.batch_first:
        h = h.transpose(1, 0, 2)
    out = workspace.copy(h)
    if args.lengths is not None:
        mask = step_mask(args)   # (T, B)
        out[~(mask.T if args.batch_first else mask)] = 0
    return out


def _outputs_of_nothing(args):
    """The output of a problem with T, B or H zero: zeros of the output's shape."""
    T, B, H = args.T, args.B, args.H
    return np.zeros((B, T, H) if args.batch_first else (T, B, H), args.dtype)


def _gradients_of_nothing(args, finals):
    """The gradients of a problem with T, B or H zero: no step ran, so the final states'
    gradients pass to the initial states unchanged and every other gradient is zero."""
    dtype, B, H = args.dtype, args.B, args.H
    carries = _carries(finals, B, H, dtype)
    GH = args.spec.gates * H
    db = (np.zeros(GH, dtype), np.zeros(GH, dtype)) if args.has_bias else (None, None)
    return args.spec.grads(np.zeros(args.x.shape, dtype), *carries,
                           np.zeros((GH, args.I), dtype), np.zeros((GH, H), dtype), *db)


def _install_fastpath():
    """Bind the fast path to what it builds and calls (it cannot import this module)."""
    specs = tuple(SPECS.values())
    _fastpath.install(
        specs=specs, compiled_cache=CompiledCache, cell_args=CellArgs,
        workspace_globals=vars(workspace),
        nonlinearity_codes=dict(NONLINEARITY_CODES), driver_globals=globals(),
        policy=step_form, validation_globals=vars(validation))


_install_fastpath()
