"""The timed work of the benchmark: the random problems, their FLOP counts, the runners
that do the same work per backend, and the rows of `fastbptt bench`.

The timed unit is what training does once per batch: a forward pass and a backward pass
through all T steps, with a gradient dh arriving at every step (many-to-many), on a random
problem initialised like torch.nn. runner(cell, backend, problem) returns it as a function
of no arguments for fastbptt.bench.harness to time. Each backend is one entry of RUNNERS:
a function (cell, problem) -> run that looks up and allocates everything once, so that the
timed call is the work only. The peers a user would pick instead (torch, JAX, numba) are
modules of fastbptt.bench.peers with one small interface (prepare(cell, problem) ->
Prepared(run, result)): a new peer is one more module there and entry of its PEERS, and
measure_rows checks each peer's result against fastbptt's before timing it; nothing else
here or in the harness changes.

What the benchmark knows per cell it reads from the cell's CellSpec (block "cells" below).
"""
import importlib
import statistics
from dataclasses import dataclass

import numpy as np

import fastbptt
from fastbptt._kernels import gemm_roofline
from fastbptt.bench.harness import thread_limit, time_interleaved
from fastbptt.bench.peers import PEERS, PeerUnavailable, check_peer, expected_result, peer
from fastbptt.cells.spec import SPECS, get_spec, step_form
from fastbptt.runtime.packing import packer

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
    return compiled_step_form(cell, B, H, dtype) == "transposed"


def compiled_step_form(cell, B, H, dtype, T=None):
    """The per-step product's form the compiled cell runs at batch B, hidden size H and
    this dtype in this process (step_form with the process's packer), in a call of T
    steps (None: of as many steps as packing needs)."""
    return step_form(cell, B, H, dtype, packer(), T)


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
    """torch.nn's module of the cell with the problem's weights (fastbptt.bench.peers.torch);
    its run() returns x.grad."""
    return peer("torch").prepare(cell, problem).run


def _roofline_runner(cell, problem):
    """The matrix products of the compiled forward+backward alone (gemm_roofline, built
    from the kernels' own helpers), in the form (GEMV, transposed or plain per-step GEMM)
    that the cell's wrapper picks and in the kernel's buffer layout (its gemm_layout):
    roofline ms / compiled ms is the share of the compiled time that is matrix products.
    tests/test_gemm_calls.py checks that this run makes exactly the compiled run's calls."""
    spec = get_spec(cell)
    T, B, I = problem.x.shape
    H = problem.W_hh.shape[1]
    GH = problem.W_hh.shape[0]
    dtype = problem.x.dtype
    layout = importlib.import_module(spec.kernel).gemm_layout(H)
    form = compiled_step_form(cell, B, H, dtype, T)
    rng = np.random.default_rng(1)
    # P and carry are read before they are written: P's columns past GH (the GRU's fourth
    # block, dP's last block in the backward) and carry (added to at every step where the
    # cell owns its product). Zeros, not np.empty: whatever memory they got (denormals
    # included, which slow every product that reads them many times over) made the GRU's
    # roofline slower than the whole compiled call, by a factor that changed from run to
    # run (bench/RESULTS.md, "The roofline's uninitialised buffers").
    buffers = {
        "X": problem.x.reshape(T * B, I),
        "W_ih": problem.W_ih,
        "W_hh": problem.W_hh,
        "W_hhT": np.ascontiguousarray(problem.W_hh.T),
        "P": np.zeros((T * B, spec.work_gates * H), dtype),
        "R": np.empty((B, GH), dtype) if layout["own_product"] else None,
        "hbuf": (0.1 * rng.standard_normal((T + 1, B, H))).astype(dtype),
        "scratch": np.empty(GH * B, dtype),
        "carry": np.zeros((B, H), dtype),
        "dX": np.empty((T * B, I), dtype),
        "dW_ih": np.empty((GH, I), dtype),
        "dW_hh": np.empty((GH, H), dtype),
    }

    def run():
        gemm_roofline.recurrent_gemms(**buffers, transposed=form == "transposed",
                                      front=layout["front"], back=layout["back"],
                                      packed=form == "packed")

    return run


# backend name -> (cell, problem) -> run, in the table's column order:
# - compiled: fastbptt's kernels;  reference: fastbptt.reference, the NumPy twins;
# - torch: torch.nn.RNN/LSTM/GRU (CPU) with the same weights, input, initial states and
#   dh, `out.backward(dh)`: all parameter and input gradients (fastbptt.bench.peers.torch;
#   kept here, where the pytest-benchmark suites of each cell find it, unchecked; the
#   other peers, and torch checked, are measure_rows' peers and bench/test_bench_peers.py);
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
    (a key of RUNNERS, or a peer of fastbptt.bench.peers.PEERS): the unit that is timed."""
    if backend not in RUNNERS and backend not in PEERS:
        known = [*RUNNERS, *(name for name in PEERS if name not in RUNNERS)]
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(known)}")
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
    if backend in RUNNERS:
        return RUNNERS[backend](cell, problem)
    return peer(backend).prepare(cell, problem).run


def chosen_peers(peers=None, torch=None):
    """The peers a run times, those of `peers` (names of PEERS, in their order) that are
    available here; peers=None is torch alone, the table before there were other peers.
    torch=False leaves torch out (--no-torch). An unknown name raises ValueError."""
    names = ["torch"] if peers is None else list(dict.fromkeys(peers))
    for name in names:
        peer(name)   # ValueError for an unknown name
    return [name for name in names if not (name == "torch" and torch is False)
            and peer(name).available().ok]


def fault_entries(backend, timing):
    """A row's page-fault entries of one backend's Timing: <backend>_faults, the median
    minor page faults per call, and <backend>_faults_samples, those of each timed sample
    (both None where the harness could not count them)."""
    samples = timing.faults
    return {f"{backend}_faults": None if samples is None else statistics.median(samples),
            f"{backend}_faults_samples": samples}


def measure_rows(cells, shapes, dtypes, *, threads=(1,), repeat=None, reference=True,
                 torch=None, peers=None, roofline=True, reference_budget=REFERENCE_BUDGET,
                 seed=0):
    """Yield one result row (a dict, JSON-ready) per shape, dtype, cell and thread count,
    as measured.

    A generator, so that a caller can print each row while the next is measured. Times are
    medians in milliseconds of interleaved calls (time_interleaved); GFLOP/s is flops()
    over the median; speedup is reference ms over compiled ms, efficiency roofline ms over
    compiled ms. The reference is skipped (reference_skipped True, its entries None) where
    estimated_reference_seconds exceeds reference_budget (None: never skipped).

    Peers: chosen_peers(peers, torch), so peers=None runs torch when it is importable and
    torch is not False. Each peer's outputs and gradients are held to fastbptt's
    (peers.check_peer, PeerMismatch when they differ) before it is timed; its row entries
    are <name>_ms, _gflops, _times_ms and <name>_speedup = peer ms / compiled ms (above 1:
    fastbptt is faster), or, where the peer cannot run the row (PeerUnavailable),
    <name>_ms None and <name>_skipped the reason. best_peer names the fastest peer of the
    row and best_peer_speedup is its ratio (None without one).

    Page faults: <backend>_faults is the median of the minor page faults per call of its
    timed samples and <backend>_faults_samples those per sample (harness.minor_faults;
    None where getrusage is missing, or the backend did not run): how much fresh memory
    each call took from the kernel. Run steady_allocator first, as `fastbptt bench` does.
    """
    peer_names = chosen_peers(peers, torch)
    for shape in shapes:
        for dtype in dtypes:
            for cell in cells:
                problem = make_problem(cell, *shape, dtype, seed)
                work = flops(cell, *shape)
                skip = reference and reference_budget is not None and \
                    estimated_reference_seconds(cell, *shape) > reference_budget
                own = ["compiled"] + ["reference"] * (reference and not skip)
                expected = expected_result(cell, problem) if peer_names else None
                where = f" at {cell} {','.join(map(str, shape))} {np.dtype(dtype).name}"
                for n in threads:
                    row = {"shape": list(shape), "dtype": np.dtype(dtype).name,
                           "cell": cell, "threads": n, "flops": work}
                    with thread_limit(n):
                        runs = {b: runner(cell, b, problem) for b in own}
                        skipped = {}
                        for name in peer_names:
                            try:
                                prepared = peer(name).prepare(cell, problem, threads=n)
                            except PeerUnavailable as exc:
                                skipped[name] = str(exc)
                                continue
                            check_peer(name, prepared.result, expected, where)
                            runs[name] = prepared.run
                        if roofline:
                            runs["roofline"] = runner(cell, "roofline", problem)
                        # At more than one thread the reference's NumPy BLAS leaves its
                        # idle threads spinning after each call (OpenBLAS's threads
                        # busy-wait before they sleep) on the core that the next
                        # backend's second thread needs: interleaved, it slowed torch
                        # and fastbptt at two threads (bench/RESULTS.md, "The reference's
                        # spinning threads"). So there it is timed in a round of its own,
                        # after the others.
                        alone = {"reference": runs.pop("reference")} \
                            if n > 1 and "reference" in runs else {}
                        timings = time_interleaved(runs, repeat)
                        if alone:
                            timings.update(time_interleaved(alone, repeat))
                    for backend, timing in timings.items():
                        row[f"{backend}_ms"] = timing.median * 1e3
                        row[f"{backend}_gflops"] = work / timing.median / 1e9
                        row[f"{backend}_times_ms"] = [t * 1e3 for t in timing.times]
                        row.update(fault_entries(backend, timing))
                    compiled = row["compiled_ms"]
                    if reference:
                        row["reference_skipped"] = skip
                        if skip:
                            row.update(reference_ms=None, reference_gflops=None,
                                       reference_times_ms=None, reference_faults=None,
                                       reference_faults_samples=None, speedup=None)
                        else:
                            row["speedup"] = row["reference_ms"] / compiled
                    for name in peer_names:
                        if name in skipped:
                            row.update({f"{name}_ms": None, f"{name}_gflops": None,
                                        f"{name}_times_ms": None, f"{name}_speedup": None,
                                        f"{name}_faults": None, f"{name}_faults_samples": None,
                                        f"{name}_skipped": skipped[name]})
                        else:
                            row[f"{name}_speedup"] = row[f"{name}_ms"] / compiled
                    timed = [name for name in peer_names if name not in skipped]
                    best = min(timed, key=lambda name: row[f"{name}_ms"], default=None)
                    row["best_peer"] = best
                    row["best_peer_speedup"] = None if best is None else \
                        row[f"{best}_speedup"]
                    if roofline:
                        row["efficiency"] = row["roofline_ms"] / compiled
                    yield row
