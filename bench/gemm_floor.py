"""How close the compiled RNN gets to its GEMM floor, and what that floor allows against
the reference.

The floor is the time of the GEMM calls that one compiled forward+backward makes (the
same shapes, transposes and counts, through the same BLAS shim), run back to back with
nothing between them. Compiled time / floor says how little goes to anything but GEMM;
reference time / floor is the largest speedup over the reference that any kernel calling
this BLAS could show. The three are timed interleaved (fastbptt.bench.time_interleaved),
one thread, medians.

    python bench/gemm_floor.py --shape 100,32,256,256 --dtype float32 --repeat 40

Time-major, 1 < B < H (the transposed per-step form); other regimes make other calls.
`fastbptt bench` now carries the same measurement for every cell and regime (its
roofline and efficiency columns, fastbptt/_kernels/gemm_roofline.pyx); this script
stays as the RNN-only probe behind the earlier figures of bench/RESULTS.md.
"""
import argparse

import numpy as np

import fastbptt
from fastbptt import bench
from fastbptt._kernels.blas import gemm_py


def gemm_calls(T, B, I, H, dtype, seed=0):
    """The GEMMs of one compiled forward+backward at 1 < B < H, time-major, as a callable."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T * B, I)).astype(dtype)
    W_ih = rng.standard_normal((H, I)).astype(dtype)
    W_hh = rng.standard_normal((H, H)).astype(dtype)
    h = rng.standard_normal((B, H)).astype(dtype)
    P = np.empty((T * B, H), dtype)       # projections, then dA
    Hs = rng.standard_normal((T * B, H)).astype(dtype)   # the states h_0..h_{T-1}
    RT = np.empty((H, B), dtype)
    dX = np.empty((T * B, I), dtype)
    dW_ih = np.empty((H, I), dtype)
    dW_hh = np.empty((H, H), dtype)

    def run():
        gemm_py(False, True, 1.0, X, W_ih, 0.0, P)        # P = X W_ih^T
        for _ in range(T):                                # forward: RT = W_hh h^T
            gemm_py(False, True, 1.0, W_hh, h, 0.0, RT)
        for _ in range(T):                                # backward: cT = W_hh^T dA_t^T
            gemm_py(False, True, 1.0, W_hh, h, 0.0, RT)
        gemm_py(True, False, 1.0, P, X, 0.0, dW_ih)       # dW_ih = dA^T X
        gemm_py(False, False, 1.0, P, W_ih, 0.0, dX)      # dX = dA W_ih
        gemm_py(True, False, 1.0, P, Hs, 0.0, dW_hh)      # dW_hh = dA^T H_prev
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="100,32,256,256", help="T,B,I,H")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=40)
    opts = parser.parse_args(argv)
    T, B, I, H = map(int, opts.shape.split(","))
    if not 1 < B < H:
        parser.error("the floor here models the transposed step, 1 < B < H")

    problem = bench.make_problem("rnn", T, B, I, H, opts.dtype)
    runs = {
        "gemm floor": gemm_calls(T, B, I, H, np.dtype(opts.dtype)),
        "compiled": bench.runner("rnn", "compiled", problem),
        "reference": bench.runner("rnn", "reference", problem),
    }
    with bench.thread_limit(1):
        timings = bench.time_interleaved(runs, opts.repeat)
    med = {name: timing.median for name, timing in timings.items()}

    print("\n".join(bench.machine_lines()))
    print(f"rnn T,B,I,H={opts.shape} {opts.dtype}, one thread, "
          f"medians of {opts.repeat} interleaved repeats, fastbptt {fastbptt.__version__}")
    for name, seconds in med.items():
        print(f"  {name:10s} {seconds * 1e3:8.2f} ms")
    print(f"  compiled / floor:  {med['compiled'] / med['gemm floor']:.3f} "
          f"(GEMM efficiency {med['gemm floor'] / med['compiled']:.0%})")
    print(f"  speedup over reference: {med['reference'] / med['compiled']:.3f}x; "
          f"at most {med['reference'] / med['gemm floor']:.3f}x at the floor")


if __name__ == "__main__":
    main()
