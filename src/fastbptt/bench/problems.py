"""The timed work of the benchmark: the random problems, their FLOP counts, the runners
that do the same work per backend, and the rows of `fastbptt bench`.

The timed unit is what training does once per batch: a forward pass and a backward pass
through all T steps, with a gradient dh arriving at every step (many-to-many), on a random
problem initialised like torch.nn. runner(cell, backend, problem) returns it as a function
of no arguments for fastbptt.bench.harness to time. Each backend is one entry of RUNNERS:
a function (cell, problem) -> run that looks up and allocates everything once, so that the
timed call is the work only. A new peer (JAX, numba, ...) is one more such function and
entry; nothing else here or in the harness changes.

What the benchmark knows per cell it reads from the cell's CellSpec (block "cells" below).
"""
from dataclasses import dataclass

import numpy as np

import fastbptt
from fastbptt._kernels import gemm_roofline
from fastbptt.bench.harness import thread_limit, time_interleaved
from fastbptt.cells.spec import SPECS, get_spec, step_form

# ---------------------------------------------------------------- cells
# What the benchmark knows per cell comes from fastbptt.cells.spec (CellSpec); the only
# per-cell figures kept here are the reference's dispatch estimates below.


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as the benchmark calls it.

    forward and backward name a function pair found under the same names in fastbptt and
    fastbptt.reference: forward(x, *states, W_ih, W_hh, b_ih, b_hh) -> (h, cache) and
    backward(dh, cache). gates is G: W_ih is (G*H, I), and one forward+backward costs
    6*T*B*(I+H)*G*H FLOPs. states counts the initial states passed after x.
    """
    forward: str
    backward: str
    gates: int
    states: int = 1


# One entry per CellSpec, in its order.
CELLS = {name: Cell(spec.forward_name, spec.backward_name, gates=spec.gates,
                    states=len(spec.states))
         for name, spec in SPECS.items()}
# The Python and NumPy dispatch of one step of the reference's loops (forward + backward)
# per gate (its element-wise NumPy calls grow with the gates), a conservative bound for
# this kind of machine over what was measured at H = 32 for each cell.
_REFERENCE_STEP_SECONDS_PER_GATE = 30e-6


def transposed_step(cell, B, H, dtype):
    """Whether the compiled cell runs its per-step product in the transposed form at batch
    B, hidden size H and this dtype (the wrappers' choice, which the roofline follows)."""
    return step_form(cell, B, H, dtype) == "transposed"


# ---------------------------------------------------------------- shapes and estimates

# (T, B, I, H), the issue's six: batch 1 with short, char-RNN-sized and long sequences,
# where per-step overhead rules, then three sizes where the matrix products do.
ISSUE_SHAPES = [(100, 1, 32, 32), (25, 1, 100, 100), (1000, 1, 128, 128),
                (100, 32, 256, 256), (35, 20, 650, 650), (50, 64, 1024, 1024)]
# `fastbptt bench` without --shapes or --full: the issue's shapes up to (100,32,256), a
# few minutes on 2 cores; --full adds (35,20,650) and (50,64,1024), whose float64 LSTM
# rows alone take seconds a call in each of compiled, torch and roofline.
DEFAULT_SHAPES = ISSUE_SHAPES[:4]
DEFAULT_DTYPES = ["float32", "float64"]

# The reference is skipped where one call is estimated to take longer than this (s).
REFERENCE_BUDGET = 0.5
# The rate of the reference's matrix products in the estimate (with the per-step dispatch
# of _REFERENCE_STEP_SECONDS_PER_GATE).
_REFERENCE_GFLOPS = 50.0


def flops(cell, T, B, I, H):
    """Floating-point operations of one forward+backward, counting the matrix products.

    Forward multiplies every step's [x_t, h_{t-1}] (B, I+H) by the stacked weights
    (I+H, G*H); backward multiplies by the same weights twice, once for the input and
    state gradients and once for the weight gradients. At 2 FLOPs per multiply-add:
    3 * 2*T*B*(I+H)*G*H. The element-wise work is left out, as is usual for GEMM rates.
    """
    return 6 * T * B * (I + H) * CELLS[cell].gates * H


def estimated_reference_seconds(cell, T, B, I, H):
    """A conservative guess of one reference forward+backward: per-step dispatch plus the
    FLOPs at _REFERENCE_GFLOPS. Used only to skip the reference where it would be slow."""
    step = _REFERENCE_STEP_SECONDS_PER_GATE * CELLS[cell].gates
    return T * step + flops(cell, T, B, I, H) / (_REFERENCE_GFLOPS * 1e9)


# ---------------------------------------------------------------- problems

@dataclass(frozen=True)
class Problem:
    """The arguments of one forward+backward."""
    x: np.ndarray        # (T, B, I)
    states: tuple        # initial states, each (B, H)
    W_ih: np.ndarray     # (G*H, I)
    W_hh: np.ndarray     # (G*H, H)
    b_ih: np.ndarray     # (G*H,)
    b_hh: np.ndarray     # (G*H,)
    dh: np.ndarray       # (T, B, H), dL/dh_t at every step

    @property
    def args(self):
        """The forward's positional arguments: (x, *states, W_ih, W_hh, b_ih, b_hh)."""
        return (self.x, *self.states, self.W_ih, self.W_hh, self.b_ih, self.b_hh)


def make_problem(cell, T, B, I, H, dtype, seed=0):
    """A random problem; the same numbers (rounded) for every dtype and backend.

    Weights and biases are drawn from U(-1/sqrt(H), 1/sqrt(H)), torch.nn's default, so the
    pre-activations have the spread that training starts from; x, the states and dh are
    standard normal.
    """
    G, states = CELLS[cell].gates, CELLS[cell].states
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    return Problem(
        x=rng.standard_normal((T, B, I)).astype(dtype),
        states=tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(states)),
        W_ih=rng.uniform(-k, k, (G * H, I)).astype(dtype),
        W_hh=rng.uniform(-k, k, (G * H, H)).astype(dtype),
        b_ih=rng.uniform(-k, k, G * H).astype(dtype),
        b_hh=rng.uniform(-k, k, G * H).astype(dtype),
        dh=rng.standard_normal((T, B, H)).astype(dtype),
    )


def make_head_problem(N, H, V, dtype, seed=0):
    """The arguments (h, W, b, targets) of one softmax_cross_entropy call: N rows of
    hidden states h (N, H) in tanh's range, an output layer W (V, H) from U(-0.1, 0.1),
    b (V,) zero, and N targets in [0, V)."""
    rng = np.random.default_rng(seed)
    h = np.tanh(rng.standard_normal((N, H))).astype(dtype)
    W = rng.uniform(-0.1, 0.1, (V, H)).astype(dtype)
    return h, W, np.zeros(V, dtype), rng.integers(0, V, N)


def head_flops(N, H, V):
    """FLOPs of the softmax head's three GEMMs, Y = h W^T, dW = dY^T h and dh = dY W:
    3 * 2*N*H*V (the element-wise softmax is not counted)."""
    return 6 * N * H * V


# ---------------------------------------------------------------- runners

def torch_available():
    """Whether torch can be imported (the torch column appears only then)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# The function modules of the backends that are fastbptt itself.
BACKENDS = {"compiled": fastbptt, "reference": fastbptt.reference}


def _api_runner(backend):
    """The runner of a fastbptt backend: its forward over all steps, then its backward."""
    def make(cell, problem):
        api = BACKENDS[backend]
        forward = getattr(api, CELLS[cell].forward)
        backward = getattr(api, CELLS[cell].backward)
        args = problem.args

        def run():
            _, cache = forward(*args)
            return backward(problem.dh, cache)

        return run
    return make


def _torch_runner(cell, problem):
    """torch.nn's module of the cell, holding the problem's weights, timed as training
    runs it: forward over all steps, out.backward(dh), gradients of the input, the initial
    states and every parameter (reset to None before each call, as zero_grad does)."""
    import torch
    T, B, I = problem.x.shape
    H = problem.W_hh.shape[1]
    dtype = torch.float32 if problem.x.dtype == np.float32 else torch.float64
    module = getattr(torch.nn, get_spec(cell).torch_name)(I, H).to(dtype)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", problem.W_ih), ("weight_hh_l0", problem.W_hh),
                            ("bias_ih_l0", problem.b_ih), ("bias_hh_l0", problem.b_hh)):
            getattr(module, name).copy_(torch.from_numpy(value))
    x = torch.from_numpy(problem.x.copy()).requires_grad_()
    states = [torch.from_numpy(state[None].copy()).requires_grad_()
              for state in problem.states]          # torch wants (layers, B, H)
    state_arg = tuple(states) if len(states) > 1 else states[0]   # LSTM: (h0, c0)
    dh = torch.from_numpy(problem.dh)
    leaves = [x, *states, *module.parameters()]

    def run():
        for leaf in leaves:
            leaf.grad = None
        out, _ = module(x, state_arg)
        out.backward(dh)
        return x.grad

    return run


def _roofline_runner(cell, problem):
    """The GEMM calls of the compiled forward+backward alone (gemm_roofline), in the form
    (GEMV, transposed or plain per-step GEMM) that the cell's wrapper picks: roofline ms /
    compiled ms is the share of the compiled time that is matrix products."""
    T, B, I = problem.x.shape
    H = problem.W_hh.shape[1]
    GH = problem.W_hh.shape[0]
    dtype = problem.x.dtype
    transposed = transposed_step(cell, B, H, dtype)
    rng = np.random.default_rng(1)
    X = problem.x.reshape(T * B, I)
    P = np.empty((T * B, GH), dtype)
    hbuf = (0.1 * rng.standard_normal((T + 1, B, H))).astype(dtype)
    scratch = np.empty(GH * B, dtype)
    carry = np.empty((B, H), dtype)
    dX = np.empty((T * B, I), dtype)
    dW_ih = np.empty((GH, I), dtype)
    dW_hh = np.empty((GH, H), dtype)
    W_hhT = np.ascontiguousarray(problem.W_hh.T)

    def run():
        gemm_roofline.recurrent_gemms(X, problem.W_ih, problem.W_hh, W_hhT, P, hbuf,
                                      scratch, carry, dX, dW_ih, dW_hh, transposed)

    return run


# backend name -> (cell, problem) -> run, in the table's column order:
# - compiled: fastbptt's kernels;  reference: fastbptt.reference, the NumPy twins;
# - torch: torch.nn.RNN/LSTM/GRU (CPU) with the same weights, input, initial states and
#   dh, requires_grad on the input, the initial states and the parameters,
#   `out.backward(dh)`: outputs at every step, all parameter and input gradients;
# - roofline: only the GEMM/GEMV calls the compiled kernels make for this work (same
#   shapes, transposes and counts, per-step and batched), back to back, in the same BLAS,
#   dtype and thread count (fastbptt._kernels.gemm_roofline).
RUNNERS = {
    "compiled": _api_runner("compiled"),
    "reference": _api_runner("reference"),
    "torch": _torch_runner,
    "roofline": _roofline_runner,
}
ALL_BACKENDS = list(RUNNERS)


def runner(cell, backend, problem):
    """A function of no arguments running one forward+backward of `problem` on `backend`
    (a key of RUNNERS): the unit that is timed."""
    if backend not in RUNNERS:
        raise ValueError(f"unknown backend {backend!r}; expected one of "
                         f"{', '.join(RUNNERS)}")
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
    return RUNNERS[backend](cell, problem)


def measure_rows(cells, shapes, dtypes, *, threads=(1,), repeat=None, reference=True,
                 torch=None, roofline=True, reference_budget=REFERENCE_BUDGET, seed=0):
    """Yield one result row (a dict, JSON-ready) per shape, dtype, cell and thread count,
    as measured.

    A generator, so that a caller can print each row while the next is measured. Times are
    medians in milliseconds of interleaved calls (time_interleaved); GFLOP/s is flops()
    over the median; speedup is reference ms over compiled ms, torch_speedup torch ms over
    compiled ms, efficiency roofline ms over compiled ms. torch=None runs torch when it is
    importable. The reference is skipped (reference_skipped True, its entries None) where
    estimated_reference_seconds exceeds reference_budget (None: never skipped).
    """
    if torch is None:
        torch = torch_available()
    for shape in shapes:
        for dtype in dtypes:
            for cell in cells:
                problem = make_problem(cell, *shape, dtype, seed)
                work = flops(cell, *shape)
                skip = reference and reference_budget is not None and \
                    estimated_reference_seconds(cell, *shape) > reference_budget
                backends = ["compiled"] + ["reference"] * (reference and not skip) + \
                    ["torch"] * bool(torch) + ["roofline"] * bool(roofline)
                for n in threads:
                    row = {"shape": list(shape), "dtype": np.dtype(dtype).name,
                           "cell": cell, "threads": n, "flops": work}
                    with thread_limit(n):
                        runs = {b: runner(cell, b, problem) for b in backends}
                        timings = time_interleaved(runs, repeat)
                    for backend, timing in timings.items():
                        row[f"{backend}_ms"] = timing.median * 1e3
                        row[f"{backend}_gflops"] = work / timing.median / 1e9
                        row[f"{backend}_times_ms"] = [t * 1e3 for t in timing.times]
                    compiled = row["compiled_ms"]
                    if reference:
                        row["reference_skipped"] = skip
                        if skip:
                            row.update(reference_ms=None, reference_gflops=None,
                                       reference_times_ms=None, speedup=None)
                        else:
                            row["speedup"] = row["reference_ms"] / compiled
                    if torch:
                        row["torch_speedup"] = row["torch_ms"] / compiled
                    if roofline:
                        row["efficiency"] = row["roofline_ms"] / compiled
                    yield row
