"""The two-thread LSTM forward time loop with its per-step product shared two ways: the
batch split as it runs (each core its own rows against all of W_hh) against the gate-
column split of the product (each core half of W_hh's panels for all rows, two barriers
a step), and one core's share alone. One process, forms interleaved, order rotated.

Why: at (35,20,650) the two-thread LSTM stays 1.03-1.05x torch's two threads, and its
per-step product at B = 10 a core runs at 137.7 GFLOP/s against 169-173 at B = 20
(bench/RESULTS.md, "Two threads at (35,20,650)"); the last session named the column
split as the fix. This probe measures what it buys inside a time loop with both cores
busy, before anything is built on it. bench/pair_split.h holds the loops and the forms.

    python bench/pair_split.py --rounds 9
    python bench/pair_split.py --shapes "35,20,650;100,32,256" --dtype float64

Every form is checked before it is timed: the same bits as the others, and the whole
loop within rounding of NumPy in float64. The times are the forward's product and cell
passes only (the input product and the backward loop are outside the probe).
"""
import argparse
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from fastbptt import bench

HERE = Path(__file__).resolve().parent
KERNELS = HERE.parent / "src" / "fastbptt" / "_kernels"
FORMS = ("alone", "split", "pair")


def build():
    """Compile bench/_pair_split.pyx (once per change) against the package's headers and
    import it."""
    from setuptools import Extension

    from _probe_build import build_probe

    ext = Extension("_pair_split", [str(HERE / "_pair_split.pyx")],
                    include_dirs=[str(HERE), str(KERNELS)],
                    depends=[str(HERE / "pair_split.h"), str(KERNELS / "packed_gemm.h"),
                             str(KERNELS / "packed_gemm_template.h"),
                             str(KERNELS / "lstm_cell.h")],
                    extra_compile_args=["-O3", "-std=gnu11"], libraries=["pthread", "m"])
    return build_probe(ext, HERE.parent / "build" / "pair_split")


class Case:
    """One shape: the weights, the input part of the pre-activations and the states."""

    def __init__(self, T, B, H, dtype, seed=0):
        rng = np.random.default_rng(seed)
        self.T, self.B, self.H, self.dtype = T, B, H, np.dtype(dtype)
        self.W = (rng.standard_normal((4 * H, H)) / math.sqrt(H)).astype(self.dtype)
        self.bias = (0.1 * rng.standard_normal(4 * H)).astype(self.dtype)
        self.Z = (0.5 * rng.standard_normal((T, B, 4 * H))).astype(self.dtype)
        self.h = np.zeros((T + 1, B, H), self.dtype)
        self.c = np.zeros((T + 1, B, H), self.dtype)
        self.h[0] = rng.uniform(-1, 1, (B, H))
        self.c[0] = rng.uniform(-1, 1, (B, H))

    def run(self, mod, form):
        """Seconds of one loop of the form; h and c hold its result."""
        self.h[1:] = 0
        self.c[1:] = 0
        return mod.run(form, self.W, self.bias, self.Z, self.h, self.c)


def reference(case):
    """The loop in float64 NumPy: the (h, c) histories."""
    W = case.W.astype(np.float64)
    b = case.bias.astype(np.float64)
    h = [case.h[0].astype(np.float64)]
    c = [case.c[0].astype(np.float64)]
    sig = lambda v: 1 / (1 + np.exp(-v))   # noqa: E731
    for t in range(case.T):
        z = case.Z[t].astype(np.float64) + h[-1] @ W.T + b
        i, f, g, o = np.split(z, 4, axis=1)
        c.append(sig(f) * c[-1] + sig(i) * np.tanh(g))
        h.append(sig(o) * np.tanh(c[-1]))
    return np.array(h), np.array(c)


def check(mod, case):
    """split and pair give the same bits, alone the same bits on side 0's rows, and split
    is within rounding of NumPy. Raises AssertionError naming the form."""
    want_h, want_c = reference(case)
    case.run(mod, "split")
    split = case.h.copy(), case.c.copy()
    tol = 2e-4 if case.dtype == np.float32 else 1e-10
    err = max(np.abs(split[0] - want_h).max(), np.abs(split[1] - want_c).max())
    if not err < tol:
        raise AssertionError(f"split: off NumPy by {err:.2e}")
    case.run(mod, "pair")
    if not (np.array_equal(case.h, split[0]) and np.array_equal(case.c, split[1])):
        raise AssertionError("pair: not the same bits as split")
    case.run(mod, "alone")
    rows = case.B // 2
    if not (np.array_equal(case.h[:, :rows], split[0][:, :rows])
            and np.array_equal(case.c[:, :rows], split[1][:, :rows])):
        raise AssertionError("alone: not the same bits as split on its rows")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="35,20,650;100,32,256;50,64,1024",
                        help='"T,B,H;..." (I = H does not enter: the input part is given)')
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs")

    mod = build()
    cases = []
    for dtype in opts.dtype.split(","):
        for shape in opts.shapes.split(";"):
            T, B, H = map(int, shape.split(","))
            case = Case(T, B, H, dtype)
            check(mod, case)
            cases.append((case, {f: [] for f in FORMS}))
    print("\n".join(bench.machine_lines()))
    print(f"{opts.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for r in range(opts.rounds):
        for case, times in cases:
            k = r % len(FORMS)
            for form in FORMS[k:] + FORMS[:k]:
                times[form].append(case.run(mod, form))
        print(f"round {r + 1}/{opts.rounds} done, load average "
              f"{os.getloadavg()[0]:.2f}", file=sys.stderr)

    print("\nms per forward loop (product + cell passes), min / median over the rounds; "
          "split / pair above 1: the column split is faster")
    print("| dtype | T,B,H | W_hh MB | alone (B/2 rows, one core) | split | pair | "
          "split / pair (min, median) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case, times in cases:
        mb = case.W.nbytes / 2**20
        lo = {f: min(times[f]) * 1e3 for f in FORMS}
        md = {f: statistics.median(times[f]) * 1e3 for f in FORMS}
        print(f"| {case.dtype} | {case.T},{case.B},{case.H} | {mb:.1f} | "
              + " | ".join(f"{lo[f]:.3f} / {md[f]:.3f}" for f in FORMS)
              + f" | {lo['split'] / lo['pair']:.2f}, {md['split'] / md['pair']:.2f} |")


if __name__ == "__main__":
    main()
