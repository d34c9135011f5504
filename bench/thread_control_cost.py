"""What the time loops' thread control costs (blas.pxd: one_thread_begin / one_thread_end).

Every kernel reads scipy's BLAS thread count before its time loop and, when it is above
one, sets it to one and back after the loop. Two measurements, interleaved:

- the calls themselves from Python: blas_threads() (a get), and a set to 1 and back (two
  calls of set_blas_threads, each a get and a set), against a Python call of the same
  module that does nothing (has_thread_control): the difference is the C calls' share;
- a whole call at the fixed-cost size (T = 1, B = 1, I = H = 8, forward + backward of
  every cell) with the BLAS at 1 thread (the bracket only reads the count) against 2
  threads (it reads and sets twice per loop, four sets per forward + backward).

    python bench/thread_control_cost.py --rounds 5
"""
import argparse

import numpy as np

import fastbptt
from fastbptt._kernels import blas
from fastbptt.bench import harness

CELLS = {"rnn": 1, "lstm": 4, "gru": 3}


def python_calls(calls):
    """{name: ns per call} for the get, the set pair and the do-nothing call."""
    before = blas.blas_threads()

    def noop():
        for _ in range(calls):
            blas.has_thread_control()

    def get():
        for _ in range(calls):
            blas.blas_threads()

    def set_pair():
        for _ in range(calls):
            blas.set_blas_threads(1)
            blas.set_blas_threads(before)

    timings = harness.time_interleaved({"noop": noop, "get": get, "set 1 and back": set_pair},
                                       repeat=21)
    return {name: t.median / calls * 1e9 for name, t in timings.items()}


def whole_calls(calls):
    """{(cell, threads): µs per forward + backward} at T = 1, B = 1, I = H = 8."""
    rng = np.random.default_rng(0)
    runs = {}
    for cell, G in CELLS.items():
        x = rng.standard_normal((1, 1, 8)).astype(np.float32)
        W_ih, W_hh = (0.1 * rng.standard_normal((G * 8, 8)).astype(np.float32) for _ in "ab")
        fwd = getattr(fastbptt, f"{cell}_forward")
        bwd = getattr(fastbptt, f"{cell}_backward")
        states = [None] * (2 if cell == "lstm" else 1)

        for n in (1, 2):
            def run(fwd=fwd, bwd=bwd, x=x, W_ih=W_ih, W_hh=W_hh, states=states, n=n):
                blas.set_blas_threads(n)
                for _ in range(calls):
                    h, cache = fwd(x, *states, W_ih, W_hh)
                    bwd(h, cache)
            runs[(cell, n)] = run
    before = blas.blas_threads()
    try:
        timings = harness.time_interleaved(runs, repeat=21)
    finally:
        blas.set_blas_threads(max(before, 1))
    return {key: t.median / calls * 1e6 for key, t in timings.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repeat the whole probe")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed sample")
    opts = parser.parse_args(argv)
    if not blas.has_thread_control():
        print("no thread control for this BLAS: nothing to measure")
        return 0
    fastbptt.show_config()
    for r in range(opts.rounds):
        py = python_calls(opts.calls * 10)
        print(f"round {r}: Python calls, ns: " + ", ".join(f"{k} {v:.0f}" for k, v in py.items())
              + f"; beyond a Python call: get {py['get'] - py['noop']:.0f}, "
              f"a set {(py['set 1 and back'] - 2 * py['noop']) / 2:.0f}")
        whole = whole_calls(opts.calls // 10)
        print(f"round {r}: forward + backward, µs: " + ", ".join(
            f"{cell} {whole[(cell, 1)]:.2f} (1 thread) {whole[(cell, 2)]:.2f} (2 threads, "
            f"{whole[(cell, 2)] - whole[(cell, 1)]:+.2f})" for cell in CELLS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
