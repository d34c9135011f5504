"""The benchmark: compiled time loops against their NumPy reference twins, PyTorch and
the GEMM roofline.

`fastbptt bench`, the pytest-benchmark suites in bench/ and their tests share this one
definition of the timed work, its FLOP count, the timer and the machine description, so
their figures mean the same thing. The timed work is what training does once per batch:
a forward pass and a backward pass through all T steps, with a gradient dh arriving at
every step (many-to-many), on a random problem initialised like torch.nn.

Four backends run that work on the same numbers:
- compiled: fastbptt's kernels;  reference: fastbptt.reference, the NumPy twins;
- torch: torch.nn.RNN/LSTM/GRU (CPU) with the same weights, input, initial states and dh,
  requires_grad on the input, the initial states and the parameters, `out.backward(dh)`:
  outputs at every step, all parameter and input gradients;
- roofline: only the GEMM/GEMV calls the compiled kernels make for this work (same shapes,
  transposes and counts, per-step and batched), back to back, in the same BLAS, dtype and
  thread count (fastbptt._kernels.gemm_roofline). roofline ms / compiled ms is the
  efficiency: the share of the compiled time that is matrix products.
Thread counts are set per row (threadpoolctl for the BLAS, torch.set_num_threads).
"""
import math
import os
import platform
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Callable, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

import fastbptt
from fastbptt import _config
from fastbptt._kernels import gemm_roofline


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


# Adding a cell is one entry here (and one in _TORCH_MODULES).
CELLS = {
    "rnn": Cell("rnn_forward", "rnn_backward", gates=1),
    "lstm": Cell("lstm_forward", "lstm_backward", gates=4, states=2),   # (h0, c0)
    "gru": Cell("gru_forward", "gru_backward", gates=3),
}

BACKENDS = {"compiled": fastbptt, "reference": fastbptt.reference}
# Every backend runner() knows, in the table's column order.
ALL_BACKENDS = ["compiled", "reference", "torch", "roofline"]
_TORCH_MODULES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}

# (T, B, I, H), the issue's six: batch 1 with short, char-RNN-sized and long sequences,
# where per-step overhead rules, then three sizes where the matrix products do.
ISSUE_SHAPES = [(100, 1, 32, 32), (25, 1, 100, 100), (1000, 1, 128, 128),
                (100, 32, 256, 256), (35, 20, 650, 650), (50, 64, 1024, 1024)]
# `fastbptt bench` without --shapes or --full: the issue's shapes up to (100,32,256), a
# few minutes on 2 cores; --full adds (35,20,650) and (50,64,1024), whose float64 LSTM
# rows alone take seconds a call in each of compiled, torch and roofline.
DEFAULT_SHAPES = ISSUE_SHAPES[:4]
DEFAULT_DTYPES = ["float32", "float64"]
DEFAULT_THREADS = "1,all"

# Seconds of timed calls per measurement when the repeat count is chosen adaptively.
REPEAT_BUDGET = 1.0
MIN_REPEAT = 3      # the largest shapes: a median still discards one outlier
MAX_REPEAT = 100    # the smallest shapes: enough for a stable median, quickly
# Calls shorter than this (s) are re-warmed before each timed call (time_interleaved).
REWARM_BELOW = 0.01

# The reference is skipped where one call is estimated to take longer than this (s).
REFERENCE_BUDGET = 0.5
# The estimate's two terms, conservative for this kind of machine: the Python and NumPy
# dispatch of one step of the reference's loops (forward + backward; ~15 us for the RNN,
# ~75 us for the LSTM and GRU measured at H = 32), and the rate of its matrix products.
_REFERENCE_STEP_SECONDS = {"rnn": 20e-6, "lstm": 90e-6, "gru": 90e-6}
_REFERENCE_GFLOPS = 50.0

# n of the n x n GEMM whose rate the header gives as the machine's ceiling.
CEILING_N = 1536


def thread_counts(text):
    """'1,all' -> [1, os.cpu_count()]: the thread counts of --threads, deduplicated in
    order. Raises ValueError for anything but positive ints and 'all'."""
    counts = []
    for entry in str(text).split(","):
        entry = entry.strip()
        if entry == "all":
            n = os.cpu_count() or 1
        else:
            try:
                n = int(entry)
            except ValueError:
                n = 0
            if n < 1:
                raise ValueError(f"expected positive integers or 'all', got {entry!r}")
        if n not in counts:
            counts.append(n)
    return counts


def torch_available():
    """Whether torch can be imported (the torch column appears only then)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def thread_limit(n):
    """Run the block with n threads in every BLAS and OpenMP pool threadpoolctl sees and,
    when torch is loaded, in torch's intra-op pool."""
    import sys
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def flops(cell, T, B, I, H):
    """Floating-point operations of one forward+backward, counting the matrix products.

    Forward multiplies every step's [x_t, h_{t-1}] (B, I+H) by the stacked weights
    (I+H, G*H); backward multiplies by the same weights twice, once for the input and
    state gradients and once for the weight gradients. At 2 FLOPs per multiply-add:
    3 * 2*T*B*(I+H)*G*H. The element-wise work is left out, as is usual for GEMM rates.
    """
    return 6 * T * B * (I + H) * CELLS[cell].gates * H


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


def runner(cell, backend, problem):
    """A function of no arguments running one forward+backward: the unit that is timed.

    backend: "compiled", "reference", "torch" or "roofline" (see the module docstring).
    Everything is looked up and allocated here, once, so the timed call is the work only.
    """
    if backend == "torch":
        return _torch_runner(cell, problem)
    if backend == "roofline":
        return _roofline_runner(cell, problem)
    api = BACKENDS[backend]
    forward = getattr(api, CELLS[cell].forward)
    backward = getattr(api, CELLS[cell].backward)
    args = (problem.x, *problem.states, problem.W_ih, problem.W_hh, problem.b_ih, problem.b_hh)

    def run():
        _, cache = forward(*args)
        return backward(problem.dh, cache)

    return run


def _torch_runner(cell, problem):
    """torch.nn's module of the cell, holding the problem's weights, timed as training
    runs it: forward over all steps, out.backward(dh), gradients of the input, the initial
    states and every parameter (reset to None before each call, as zero_grad does)."""
    import torch
    T, B, I = problem.x.shape
    H = problem.W_hh.shape[1]
    dtype = torch.float32 if problem.x.dtype == np.float32 else torch.float64
    module = getattr(torch.nn, _TORCH_MODULES[cell])(I, H).to(dtype)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", problem.W_ih), ("weight_hh_l0", problem.W_hh),
                            ("bias_ih_l0", problem.b_ih), ("bias_hh_l0", problem.b_hh)):
            getattr(module, name).copy_(torch.from_numpy(value))
    x = torch.from_numpy(problem.x.copy()).requires_grad_()
    states = [torch.from_numpy(state[None].copy()).requires_grad_()
              for state in problem.states]          # torch wants (layers, B, H)
    state_arg = tuple(states) if cell == "lstm" else states[0]
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
    """The GEMM calls of the compiled forward+backward alone (gemm_roofline), in the step
    form (GEMV, transposed or plain per-step GEMM) and the layout that the cell's
    wrapper and kernel use."""
    from importlib import import_module

    from fastbptt._kernels.recurrent_gemm import STEP_FORMS
    from fastbptt._step_form import step_form
    T, B, I = problem.x.shape
    H = problem.W_hh.shape[1]
    GH = problem.W_hh.shape[0]
    dtype = problem.x.dtype
    form = step_form(cell, B, H, dtype)
    layout = import_module(f"fastbptt._kernels.{cell}").gemm_layout(H)
    rng = np.random.default_rng(1)
    X = problem.x.reshape(T * B, I)
    A = np.empty((T * B, layout["gate_columns"]), dtype)
    R = np.empty((B, GH), dtype) if layout["product_apart"] else None
    hbuf = (0.1 * rng.standard_normal((T + 1, B, H))).astype(dtype)
    transposed = form == "transposed"
    scratch = np.empty(GH * B, dtype) if transposed else None
    W_hhT = np.ascontiguousarray(problem.W_hh.T) if transposed else None
    carry = np.empty((B, H), dtype)
    dX = np.empty((T * B, I), dtype)
    dW_ih = np.empty((GH, I), dtype)
    dW_hh = np.empty((GH, H), dtype)
    code, split, tail = STEP_FORMS[form], layout["split"], layout["tail"]

    def run():
        gemm_roofline.recurrent_gemms(X=X, W_ih=problem.W_ih, W_hh=problem.W_hh, W_hhT=W_hhT,
                                      A=A, R=R, hbuf=hbuf, scratch=scratch, carry_h=carry,
                                      dX=dX, dW_ih=dW_ih, dW_hh=dW_hh, step_form=code,
                                      split=split, tail=tail)

    return run


def gemm_ceiling_gflops(dtype, n=None, repeat=3):
    """GFLOP/s of one n x n GEMM in the compiled kernels' BLAS under the current thread
    limits: the machine's ceiling for this dtype. Median of `repeat` after a warm-up."""
    n = n or CEILING_N
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype)
    timing = time_call(lambda: gemm_roofline.square_gemm(A, B, C), repeat)
    return 2 * n ** 3 / timing.median / 1e9


def estimated_reference_seconds(cell, T, B, I, H):
    """A conservative guess of one reference forward+backward: per-step dispatch plus the
    FLOPs at _REFERENCE_GFLOPS. Used only to skip the reference where it would be slow."""
    return T * _REFERENCE_STEP_SECONDS[cell] + flops(cell, T, B, I, H) / (_REFERENCE_GFLOPS * 1e9)


class Timing(NamedTuple):
    median: float         # seconds
    times: list           # seconds, one per timed call, in call order


def time_once(run):
    """Wall time of one call of run(), in seconds."""
    start = perf_counter()
    run()
    return perf_counter() - start


def adaptive_repeat(seconds_per_call):
    """How many timed calls fit in REPEAT_BUDGET, within [MIN_REPEAT, MAX_REPEAT]."""
    fitting = int(REPEAT_BUDGET / max(seconds_per_call, 1e-9))
    return max(MIN_REPEAT, min(MAX_REPEAT, fitting))


def time_call(run, repeat=None):
    """Time run(): one warm-up call, then `repeat` timed calls; their median and list.

    The warm-up pays the one-time costs (first touch of new memory, BLAS thread start-up)
    and, when repeat is None, its duration sets the repeat count (adaptive_repeat). The
    median rather than the minimum or the mean: it describes a typical call and ignores the
    occasional preemption on a small shared machine.
    """
    warm_up = time_once(run)
    times = [time_once(run) for _ in range(repeat or adaptive_repeat(warm_up))]
    return Timing(statistics.median(times), times)


def time_interleaved(runs, repeat=None):
    """Time several functions of no arguments fairly on a busy machine: one warm-up call
    of each, then `repeat` rounds calling each in turn; {name: Timing}.

    Interleaving spreads a burst of load from other processes over every backend instead
    of one. But a short call right after another backend's runs cold: after one torch
    forward+backward the compiled (100,1,32) call took 0.09-0.14 ms against 0.04 ms after
    itself (caches and branch predictors refilled with torch's code and data; evicting
    16 MB of data alone cost +0.01 ms). So a backend whose warm-up took less than
    REWARM_BELOW seconds gets one untimed call before each timed one. When repeat is
    None, the warm-ups' total sets it (adaptive_repeat).
    """
    warm_up = {name: time_once(run) for name, run in runs.items()}
    rounds = repeat or adaptive_repeat(sum(warm_up.values()))
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            if warm_up[name] < REWARM_BELOW:
                run()
            times[name].append(time_once(run))
    return {name: Timing(statistics.median(t), t) for name, t in times.items()}


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


def shape_text(shape):
    """'T,B,I,H', the way the table and the command line write a shape."""
    return ",".join(map(str, shape))


def _optional(key, text):
    """A column entry that reads '-' where the row has no value (a skipped reference)."""
    return lambda r: "-" if r.get(key) is None else text(r)


class _Column(NamedTuple):
    heading: str
    text: Callable[[dict], str]   # the row's entry
    width: int                    # at least len(heading)
    numeric: bool = True          # right-aligned
    needs: str = "compiled"       # the backend the column needs


_COLUMNS = [
    _Column("T,B,I,H", lambda r: shape_text(r["shape"]), 15, numeric=False),
    _Column("dtype", lambda r: r["dtype"], 7, numeric=False),
    _Column("cell", lambda r: r["cell"], 4, numeric=False),
    _Column("threads", lambda r: str(r["threads"]), 7),
    _Column("compiled ms", lambda r: f"{r['compiled_ms']:.3f}", 11),
    _Column("reference ms", lambda r: "skipped" if r["reference_ms"] is None
            else f"{r['reference_ms']:.3f}", 12, needs="reference"),
    _Column("torch ms", lambda r: f"{r['torch_ms']:.3f}", 9, needs="torch"),
    _Column("speedup", _optional("speedup", lambda r: f"{r['speedup']:.2f}x"), 7,
            needs="reference"),
    _Column("vs torch", lambda r: f"{r['torch_speedup']:.2f}x", 8, needs="torch"),
    _Column("compiled GFLOP/s", lambda r: f"{r['compiled_gflops']:.2f}", 16),
    _Column("roofline ms", lambda r: f"{r['roofline_ms']:.3f}", 11, needs="roofline"),
    _Column("efficiency", lambda r: f"{r['efficiency']:.0%}", 10, needs="roofline"),
]


def table_lines(rows, reference=True, torch=False, roofline=False):
    """The rows as a Markdown table (readable as plain text), one line at a time.

    Column widths are fixed rather than fitted to the rows, so that each line can be
    printed as soon as its row is measured; rows may be measure_rows' generator.
    """
    shown = {"compiled": True, "reference": reference, "torch": torch, "roofline": roofline}
    columns = [c for c in _COLUMNS if shown[c.needs]]

    def line(entries):
        cells = [e.rjust(c.width) if c.numeric else e.ljust(c.width)
                 for c, e in zip(columns, entries)]
        return "| " + " | ".join(cells) + " |"

    yield line([c.heading for c in columns])
    yield line(["-" * (c.width - 1) + ":" if c.numeric else "-" * c.width for c in columns])
    for row in rows:
        yield line([c.text(row) for c in columns])


def machine_header(threads=None, dtypes=(), ceiling=True, torch=None):
    """What the figures depend on besides the code: versions, CPU, the BLAS loaded (from
    fastbptt.show_config's data) and, per dtype and thread count, the GFLOP/s of one
    CEILING_N-square GEMM in that BLAS (the machine's ceiling).

    The BLAS entries' num_threads are those of the calling context, so call this under
    the limits of the measurements when there is one thread count. torch=None gives
    torch's version when it is importable, False leaves it out (and torch unimported).
    """
    config = _config.config()
    header = {
        "fastbptt": config["fastbptt"],
        "python": platform.python_version(),
        "numpy": config["numpy"],
        "scipy": config["scipy"],
        "cpu": config["cpu"],
        "cpu_count": config["cpu_count"],
        "cpu_flags": config["cpu_flags"],
        "blas": config["blas"],
        "openblas_coretype": config["openblas_coretype"] or "auto-detected",
        "threads": list(threads or []),
    }
    if torch is None:
        torch = torch_available()
    if torch:
        import torch as torch_module
        header["torch"] = torch_module.__version__
    if ceiling:
        header["gemm_ceiling_gflops"] = {
            np.dtype(dtype).name: {str(n): _ceiling(dtype, n) for n in threads or [1]}
            for dtype in dtypes}
        header["ceiling_n"] = CEILING_N
    return header


def _ceiling(dtype, n):
    with thread_limit(n):
        return gemm_ceiling_gflops(dtype)


def format_header(header):
    """machine_header() as text lines, followed by what the table's figures mean."""
    versions = [f"fastbptt {header['fastbptt']}", f"Python {header['python']}",
                f"NumPy {header['numpy']}", f"SciPy {header['scipy']}"]
    if "torch" in header:
        versions.append(f"PyTorch {header['torch']}")
    flags = [flag for flag, on in header.get("cpu_flags", {}).items() if on]
    lines = [
        " | ".join(versions),
        f"CPU: {header['cpu']} ({header['cpu_count']} logical CPUs)"
        + (f", flags: {' '.join(flags)}" if flags else ""),
    ]
    for lib in header["blas"]:
        lines.append(f"BLAS: {_config.blas_summary(lib)}")
    lines.append(f"OPENBLAS_CORETYPE: {header['openblas_coretype']}")
    if header.get("threads"):
        lines.append("Threads per row: " + ", ".join(map(str, header["threads"])))
    for dtype, by_threads in header.get("gemm_ceiling_gflops", {}).items():
        rates = ", ".join(f"{rate:.1f} GFLOP/s at {n} thread{'s' * (n != '1')}"
                          for n, rate in by_threads.items())
        lines.append(f"GEMM ceiling ({header['ceiling_n']}^3 {dtype}, the compiled kernels' BLAS): "
                     + rates)
    lines.append("Timed: forward + backward through all T steps with dh at every step; "
                 "ms: median of interleaved timed calls after one warm-up each")
    gates = ", ".join(f"{name} {cell.gates}" for name, cell in CELLS.items())
    lines.append(f"GFLOP/s: 6*T*B*(I+H)*G*H / time (gates G: {gates}); "
                 "speedup: reference ms / compiled ms; vs torch: torch ms / compiled ms")
    lines.append("roofline: the compiled kernels' GEMM calls alone, back to back; "
                 "efficiency: roofline ms / compiled ms")
    lines.append(f"reference skipped where its estimated time per call exceeds "
                 f"{REFERENCE_BUDGET:g} s (--reference-budget)")
    return lines


def plot(rows, path):
    """A PNG at path: per row, the ms of each backend on a log scale, one panel per
    thread count. Needs matplotlib; raises ImportError with a clear message without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib (pip install matplotlib)") from exc
    counts = sorted({row["threads"] for row in rows})
    fig, axes = plt.subplots(len(counts), 1, figsize=(14, 4.5 * len(counts)), squeeze=False)
    for ax, n in zip(axes[:, 0], counts):
        chosen = [row for row in rows if row["threads"] == n]
        labels = [f"{row['cell']} {shape_text(row['shape'])} {row['dtype'][5:]}"
                  for row in chosen]
        width = 0.2
        for k, backend in enumerate(ALL_BACKENDS):
            values = [row.get(f"{backend}_ms") or math.nan for row in chosen]
            if all(math.isnan(v) for v in values):
                continue
            ax.bar(np.arange(len(chosen)) + (k - 1.5) * width, values, width, label=backend)
        ax.set_yscale("log")
        ax.set_ylabel("ms (forward+backward)")
        ax.set_title(f"{n} thread{'s' * (n != 1)}")
        ax.set_xticks(np.arange(len(chosen)))
        ax.set_xticklabels(labels, rotation=70, fontsize=7)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
