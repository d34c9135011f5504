"""The benchmark: compiled time loops against their NumPy reference twins.

`fastbptt bench`, the pytest-benchmark suites in bench/ and their tests share this one
definition of the timed work, its FLOP count, the timer and the machine description, so
their figures mean the same thing. The timed work is what training does once per batch:
a forward pass and a backward pass through all T steps, with a gradient dh arriving at
every step (many-to-many), on a random problem initialised like torch.nn.

Thread counts are the caller's business (`threadpoolctl.threadpool_limits`), so that the
machine description is taken under the same limits as the measurements.
"""
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Callable, NamedTuple

import numpy as np
import scipy
from threadpoolctl import threadpool_info

import fastbptt


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


# Adding a cell is one entry here.
CELLS = {
    "rnn": Cell("rnn_forward", "rnn_backward", gates=1),
    "lstm": Cell("lstm_forward", "lstm_backward", gates=4, states=2),   # (h0, c0)
    "gru": Cell("gru_forward", "gru_backward", gates=3),
}

BACKENDS = {"compiled": fastbptt, "reference": fastbptt.reference}

# (T, B, I, H): a short and a char-RNN-sized sequence at batch 1, where per-step overhead
# rules, then two sizes where the matrix products do.
DEFAULT_SHAPES = [(100, 1, 32, 32), (25, 1, 100, 100), (100, 32, 256, 256),
                  (50, 64, 1024, 1024)]
DEFAULT_DTYPES = ["float32", "float64"]

# Seconds of timed calls per measurement when the repeat count is chosen adaptively.
REPEAT_BUDGET = 1.0
MIN_REPEAT = 3      # the largest shapes: a median still discards one outlier
MAX_REPEAT = 100    # the smallest shapes: enough for a stable median, quickly


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

    The functions are looked up here, once, so the timed call is the library call only.
    """
    api = BACKENDS[backend]
    forward = getattr(api, CELLS[cell].forward)
    backward = getattr(api, CELLS[cell].backward)
    args = (problem.x, *problem.states, problem.W_ih, problem.W_hh, problem.b_ih, problem.b_hh)

    def run():
        _, cache = forward(*args)
        return backward(problem.dh, cache)

    return run


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


def measure_rows(cells, shapes, dtypes, *, repeat=None, reference=True, seed=0):
    """Yield one result row (a dict, JSON-ready) per shape, dtype and cell, as measured.

    A generator, so that a caller can print each row while the next is measured. Times are
    medians in milliseconds; GFLOP/s is flops() over the median; speedup is reference ms
    over compiled ms. With reference=False only the compiled backend runs and the rows
    have no reference entries and no speedup.
    """
    backends = ["compiled", "reference"] if reference else ["compiled"]
    for shape in shapes:
        for dtype in dtypes:
            for cell in cells:
                problem = make_problem(cell, *shape, dtype, seed)
                work = flops(cell, *shape)
                row = {"shape": list(shape), "dtype": np.dtype(dtype).name, "cell": cell,
                       "flops": work}
                for backend in backends:
                    timing = time_call(runner(cell, backend, problem), repeat)
                    row[f"{backend}_ms"] = timing.median * 1e3
                    row[f"{backend}_gflops"] = work / timing.median / 1e9
                    row[f"{backend}_times_ms"] = [t * 1e3 for t in timing.times]
                if reference:
                    row["speedup"] = row["reference_ms"] / row["compiled_ms"]
                yield row


def shape_text(shape):
    """'T,B,I,H', the way the table and the command line write a shape."""
    return ",".join(map(str, shape))


class _Column(NamedTuple):
    heading: str
    text: Callable[[dict], str]   # the row's entry
    width: int                    # at least len(heading)
    numeric: bool = True          # right-aligned
    reference: bool = False       # needs the reference backend


_COLUMNS = [
    _Column("T,B,I,H", lambda r: shape_text(r["shape"]), 15, numeric=False),
    _Column("dtype", lambda r: r["dtype"], 7, numeric=False),
    _Column("cell", lambda r: r["cell"], 4, numeric=False),
    _Column("compiled ms", lambda r: f"{r['compiled_ms']:.3f}", 11),
    _Column("reference ms", lambda r: f"{r['reference_ms']:.3f}", 12, reference=True),
    _Column("speedup", lambda r: f"{r['speedup']:.2f}x", 7, reference=True),
    _Column("compiled GFLOP/s", lambda r: f"{r['compiled_gflops']:.2f}", 16),
    _Column("reference GFLOP/s", lambda r: f"{r['reference_gflops']:.2f}", 17, reference=True),
]


def table_lines(rows, reference=True):
    """The rows as a Markdown table (readable as plain text), one line at a time.

    Column widths are fixed rather than fitted to the rows, so that each line can be
    printed as soon as its row is measured; rows may be measure_rows' generator.
    """
    columns = [c for c in _COLUMNS if reference or not c.reference]

    def line(entries):
        cells = [e.rjust(c.width) if c.numeric else e.ljust(c.width)
                 for c, e in zip(columns, entries)]
        return "| " + " | ".join(cells) + " |"

    yield line([c.heading for c in columns])
    yield line(["-" * (c.width - 1) + ":" if c.numeric else "-" * c.width for c in columns])
    for row in rows:
        yield line([c.text(row) for c in columns])


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for entry in cpuinfo:
                if entry.startswith("model name"):
                    return entry.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_name(filepath):
    """The file with its folder: wheels ship numpy's and scipy's own OpenBLAS (numpy.libs/,
    scipy.libs/), and the compiled kernels call scipy's while the reference calls numpy's."""
    path = Path(filepath)
    return f"{path.parent.name}/{path.name}"


def machine_header():
    """What the figures depend on besides the code: versions, CPU, and the BLAS loaded.

    The BLAS entries come from threadpoolctl, so call this under the thread limits of the
    measurements for num_threads to be theirs. OpenBLAS picks its kernels (architecture)
    from the CPU it detects, or from OPENBLAS_CORETYPE when set: on CPUs it under-detects
    that alone can change large-GEMM speed almost twofold.
    """
    blas = [
        {
            "library": _library_name(info["filepath"]),
            "internal_api": info["internal_api"],
            "version": info.get("version"),
            "threading_layer": info.get("threading_layer"),
            "architecture": info.get("architecture"),
            "num_threads": info["num_threads"],
        }
        for info in sorted(threadpool_info(), key=lambda info: info["filepath"])
        if info["user_api"] == "blas"
    ]
    return {
        "fastbptt": fastbptt.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "blas": blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto-detected"),
    }


def format_header(header):
    """machine_header() as text lines, followed by what the table's figures mean."""
    lines = [
        f"fastbptt {header['fastbptt']} | Python {header['python']} | "
        f"NumPy {header['numpy']} | SciPy {header['scipy']}",
        f"CPU: {header['cpu']} ({header['cpu_count']} logical CPUs)",
    ]
    for lib in header["blas"]:
        threads = lib["num_threads"]
        details = [lib["internal_api"], lib["version"],
                   lib["architecture"] and f"{lib['architecture']} kernels",
                   lib["threading_layer"], f"{threads} thread{'s' * (threads != 1)}"]
        lines.append(f"BLAS: {lib['library']}: " + ", ".join(d for d in details if d))
    lines.append(f"OPENBLAS_CORETYPE: {header['openblas_coretype']}")
    lines.append("Timed: forward + backward through all T steps with dh at every step; "
                 "ms: median of the timed calls after one warm-up")
    gates = ", ".join(f"{name} {cell.gates}" for name, cell in CELLS.items())
    lines.append(f"GFLOP/s: 6*T*B*(I+H)*G*H / time (gates G: {gates}); "
                 "speedup: reference ms / compiled ms")
    return lines
