"""What the benchmark prints and saves: the machine header (with the GEMM ceiling), the
Markdown table, the page-fault lines below it, the JSON report and the plot."""
import json
import math
import platform
import threading
from typing import Callable, NamedTuple

import numpy as np

from fastbptt._kernels import blas, gemm_roofline
from fastbptt.bench.harness import thread_limit, time_call
from fastbptt.bench.peers import PEERS, availability
from fastbptt.bench.problems import ALL_BACKENDS, CELLS, REFERENCE_BUDGET, torch_available
from fastbptt.runtime import config as _config

# n of the n x n GEMM whose rate the header gives as the machine's ceiling.
CEILING_N = 1536


def shape_text(shape):
    """'T,B,I,H', the way the table and the command line write a shape."""
    return ",".join(map(str, shape))


def gemm_ceiling_gflops(dtype, n=None, repeat=5):
    """GFLOP/s of one n x n GEMM in the compiled kernels' BLAS under the current thread
    limits: the machine's ceiling for this dtype. The fastest of `repeat` after a warm-up:
    a ceiling is what the machine gives undisturbed, and a median of three read half the
    two-thread ceiling in runs where a lone probe read it whole (bench/RESULTS.md, "The
    two-thread ceiling")."""
    n = n or CEILING_N
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype)
    timing = time_call(lambda: gemm_roofline.square_gemm(A, B, C), repeat)
    return 2 * n ** 3 / min(timing.times) / 1e9


def concurrent_ceiling_gflops(dtype, threads, n=None, repeat=5):
    """GFLOP/s of `threads` n x n GEMMs at once, one per Python thread (the kernels
    release the GIL), over the wall time of the slowest: the ceiling of a BLAS that runs
    each call on one thread, as MKL does here (loaded sequential), where
    gemm_ceiling_gflops would read one core's rate whatever the limit. It is also the
    batch split's case: each block's products on its own core."""
    n = n or CEILING_N
    rng = np.random.default_rng(0)
    jobs = [tuple(rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
            + (np.empty((n, n), dtype),) for _ in range(threads)]

    def run_all():
        workers = [threading.Thread(target=gemm_roofline.square_gemm, args=job)
                   for job in jobs]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    timing = time_call(run_all, repeat)
    return threads * 2 * n ** 3 / min(timing.times) / 1e9


def machine_header(threads=None, dtypes=(), ceiling=True, torch=None, peers=None):
    """What the figures depend on besides the code: versions, CPU, the BLAS loaded (from
    fastbptt.show_config's data) and, per dtype and thread count, the GFLOP/s of one
    CEILING_N-square GEMM in that BLAS (the machine's ceiling).

    The BLAS entries' num_threads are those of the calling context, so call this under
    the limits of the measurements when there is one thread count. torch=None gives
    torch's version when it is importable, False leaves it out (and torch unimported).
    peers: names of fastbptt.bench.peers; "peers" then maps those available to their
    versions and "peers_skipped" the others to the reason (torch=False drops torch).
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
        "per_step_packing": config["per_step_packing"],
        "threads": list(threads or []),
    }
    if peers is not None:
        status = availability([p for p in peers if not (p == "torch" and torch is False)])
        header["peers"] = {name: s.detail for name, s in status.items() if s.ok}
        header["peers_skipped"] = {name: s.detail for name, s in status.items() if not s.ok}
        torch = "torch" in header["peers"]
    elif torch is None:
        torch = torch_available()
    if torch:
        import torch as torch_module
        header["torch"] = torch_module.__version__
    if ceiling:
        header["gemm_ceiling_gflops"] = {
            np.dtype(dtype).name: {str(n): _ceiling(dtype, n) for n in threads or [1]}
            for dtype in dtypes}
        header["ceiling_n"] = CEILING_N
        header["ceiling_concurrent"] = blas.gemm_library() == "mkl"
    return header


def _ceiling(dtype, n):
    if n > 1 and blas.gemm_library() == "mkl":   # sequential: one core per call
        return concurrent_ceiling_gflops(dtype, n)
    with thread_limit(n):
        return gemm_ceiling_gflops(dtype)


def format_header(header, legend=True):
    """machine_header() as text lines, followed (legend=True) by what the table's figures
    mean; a probe with its own columns passes legend=False for the machine alone. An
    "allocator" entry (the text of harness.steady_allocator, which the caller adds) is
    shown as the Allocator line."""
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
    if "per_step_packing" in header:
        lines.append("Per-step packed products: "
                     + _config.per_step_packing_summary(header["per_step_packing"]))
    if header.get("allocator"):
        lines.append(f"Allocator: {header['allocator']}")
    if header.get("threads"):
        lines.append("Threads per row: " + ", ".join(map(str, header["threads"])))
    if header.get("peers"):
        lines.append("Peers: " + ", ".join(header["peers"].values()))
    for name, reason in header.get("peers_skipped", {}).items():
        lines.append(f"Peer {name} skipped: {reason}")
    for dtype, by_threads in header.get("gemm_ceiling_gflops", {}).items():
        rates = ", ".join(f"{rate:.1f} GFLOP/s at {n} thread{'s' * (n != '1')}"
                          for n, rate in by_threads.items())
        if header.get("ceiling_concurrent") and set(by_threads) - {"1"}:
            rates += " (above 1 thread: that many one-thread GEMMs at once, MKL being sequential)"
        lines.append(f"GEMM ceiling ({header['ceiling_n']}^3 {dtype}, the compiled kernels' BLAS): "
                     + rates)
    if legend:
        lines += _legend()
    return lines


def machine_lines(threads=(1,), dtypes=(), ceiling=False, torch=False):
    """The machine header of a probe in bench/: format_header without the table's legend,
    taken under the limit of the first thread count (so its BLAS lines show that count).
    No GEMM ceiling and no torch version unless asked, which keeps it quick and leaves
    torch unimported."""
    threads = list(threads)
    with thread_limit(threads[0]):
        header = machine_header(threads, dtypes, ceiling=ceiling, torch=torch)
    return format_header(header, legend=False)


def _legend():
    gates = ", ".join(f"{name} {cell.gates}" for name, cell in CELLS.items())
    return [
        "Timed: forward + backward through all T steps with dh at every step; "
        "ms: median of interleaved timed calls after one warm-up each",
        f"GFLOP/s: 6*T*B*(I+H)*G*H / time (gates G: {gates}); "
        "speedup: reference ms / compiled ms",
        "vs PEER: PEER ms / compiled ms (above 1: fastbptt faster); best peer: the row's "
        "fastest peer and its ratio; every peer's outputs and gradients are checked "
        "against fastbptt's before it is timed",
        "roofline: the compiled kernels' GEMM calls alone, back to back; "
        "efficiency: roofline ms / compiled ms",
        f"reference skipped where its estimated time per call exceeds "
        f"{REFERENCE_BUDGET:g} s (--reference-budget)",
        "page faults: minor page faults per timed call (median), listed below the table "
        "for each backend that took any",
    ]


def _optional(key, text):
    """A column entry that reads '-' where the row has no value (a skipped reference)."""
    return lambda r: "-" if r.get(key) is None else text(r)


class _Column(NamedTuple):
    heading: str
    text: Callable[[dict], str]   # the row's entry
    width: int                    # at least len(heading)
    numeric: bool = True          # right-aligned
    needs: str = "compiled"       # the backend the column needs ("peers": any peer)


_COLUMNS = [
    _Column("T,B,I,H", lambda r: shape_text(r["shape"]), 15, numeric=False),
    _Column("dtype", lambda r: r["dtype"], 7, numeric=False),
    _Column("cell", lambda r: r["cell"], 4, numeric=False),
    _Column("threads", lambda r: str(r["threads"]), 7),
    _Column("compiled ms", lambda r: f"{r['compiled_ms']:.3f}", 11),
    _Column("reference ms", lambda r: "skipped" if r["reference_ms"] is None
            else f"{r['reference_ms']:.3f}", 12, needs="reference"),
    _Column("PEER ms", None, 9, needs="peers"),       # one per peer: _peer_columns
    _Column("speedup", _optional("speedup", lambda r: f"{r['speedup']:.2f}x"), 7,
            needs="reference"),
    _Column("vs PEER", None, 8, needs="peers"),       # one per peer
    _Column("best peer", _optional("best_peer", lambda r: f"{r['best_peer']} "
                                                          f"{r['best_peer_speedup']:.2f}x"),
            12, needs="peers"),
    _Column("compiled GFLOP/s", lambda r: f"{r['compiled_gflops']:.2f}", 16),
    _Column("roofline ms", lambda r: f"{r['roofline_ms']:.3f}", 11, needs="roofline"),
    _Column("efficiency", lambda r: f"{r['efficiency']:.0%}", 10, needs="roofline"),
]


def _peer_columns(template, peers):
    """The columns of template ("PEER ms" or "vs PEER") for each peer, '-' where the
    peer could not run the row."""
    def column(name):
        if template.heading == "PEER ms":
            text = _optional(f"{name}_ms", lambda r: f"{r[f'{name}_ms']:.3f}")
        else:
            text = _optional(f"{name}_speedup", lambda r: f"{r[f'{name}_speedup']:.2f}x")
        heading = template.heading.replace("PEER", name)
        return template._replace(heading=heading, text=text,
                                 width=max(template.width, len(heading)))
    return [column(name) for name in peers]


def table_lines(rows, reference=True, torch=False, roofline=False, peers=None):
    """The rows as a Markdown table (readable as plain text), one line at a time.

    peers: the peers' names, a column of ms and one of ratios each, and the best peer;
    None is torch alone when torch is true (the table before there were other peers).
    Column widths are fixed rather than fitted to the rows, so that each line can be
    printed as soon as its row is measured; rows may be measure_rows' generator.
    """
    peers = (["torch"] if torch else []) if peers is None else list(peers)
    shown = {"compiled": True, "reference": reference, "peers": bool(peers),
             "roofline": roofline}
    columns = []
    for c in _COLUMNS:
        if shown[c.needs]:
            columns += _peer_columns(c, peers) if "PEER" in c.heading else [c]

    def line(entries):
        cells = [e.rjust(c.width) if c.numeric else e.ljust(c.width)
                 for c, e in zip(columns, entries, strict=True)]
        return "| " + " | ".join(cells) + " |"

    yield line([c.heading for c in columns])
    yield line(["-" * (c.width - 1) + ":" if c.numeric else "-" * c.width for c in columns])
    for row in rows:
        yield line([c.text(row) for c in columns])


def fault_lines(rows):
    """The page faults of the rows' timed calls as text lines, for below the table: a
    heading, then one line per row in which a backend took any (the median of its faults
    per call, measure_rows' <backend>_faults, at least 1), naming those backends only; or
    one line saying that no backend took any. No lines where nothing was counted (no
    getrusage). A fault is a fresh page from the kernel: a backend that takes thousands a
    call maps large blocks afresh or refills memory that its allocator gave back
    (harness.steady_allocator)."""
    counted, lines = False, []
    for row in rows:
        faults = {key[:-len("_faults")]: value for key, value in row.items()
                  if key.endswith("_faults") and value is not None}
        counted = counted or bool(faults)
        taken = ", ".join(f"{backend} {value:,.0f}" for backend, value in faults.items()
                          if value >= 1)
        if taken:
            threads = f"{row['threads']} thread{'s' * (row['threads'] != 1)}"
            lines.append(f"- {shape_text(row['shape'])} {row['dtype']} {row['cell']}, "
                         f"{threads}: {taken}")
    if not counted:
        return []
    if not lines:
        return ["Minor page faults per timed call (median): none, in every backend and row"]
    return ["Minor page faults per timed call (median), where a backend took any "
            "(the others took none):", *lines]


def json_report(header, rows):
    """One JSON object {"header": {...}, "rows": [...]} of machine_header() and the rows
    (consumed here, so measure_rows' generator measures them all first)."""
    return json.dumps({"header": header, "rows": list(rows)}, indent=2)


def plot(rows, path):
    """A PNG at path: per row, the ms of each backend on a log scale, one panel per
    thread count. Needs matplotlib; raises ImportError with a clear message without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib (pip install matplotlib)") from exc
    backends = ALL_BACKENDS + [name for name in PEERS if name not in ALL_BACKENDS]
    counts = sorted({row["threads"] for row in rows})
    fig, axes = plt.subplots(len(counts), 1, figsize=(14, 4.5 * len(counts)), squeeze=False)
    width = 0.8 / len(backends)
    for ax, n in zip(axes[:, 0], counts, strict=True):
        chosen = [row for row in rows if row["threads"] == n]
        labels = [f"{row['cell']} {shape_text(row['shape'])} {row['dtype'][5:]}"
                  for row in chosen]
        for k, backend in enumerate(backends):
            values = [row.get(f"{backend}_ms") or math.nan for row in chosen]
            if all(math.isnan(v) for v in values):
                continue
            offset = (k - (len(backends) - 1) / 2) * width
            ax.bar(np.arange(len(chosen)) + offset, values, width, label=backend)
        ax.set_yscale("log")
        ax.set_ylabel("ms (forward+backward)")
        ax.set_title(f"{n} thread{'s' * (n != 1)}")
        ax.set_xticks(np.arange(len(chosen)))
        ax.set_xticklabels(labels, rotation=70, fontsize=7)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
