"""How close the compiled softmax head (fastbptt.softmax_cross_entropy) gets to its GEMM
floor, and where the reference stands.

The floor is the three products of the head at full size, Y = h W^T, Y^T h and Y W,
through scipy's BLAS (the one the compiled kernels call) and through NumPy's (the one the
reference calls), with nothing between them. The compiled kernel makes the same products
block by block, plus the softmax pass. All four are timed interleaved, one thread, medians.

    python bench/softmax_head_floor.py --shape 700,650,10000 --dtype float32 --repeat 5
"""
import argparse
import time

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

import fastbptt


def make_problem(N, H, V, dtype, seed=0):
    """The problem of bench/test_bench_losses.py."""
    rng = np.random.default_rng(seed)
    h = np.tanh(rng.standard_normal((N, H))).astype(dtype)
    W = rng.uniform(-0.1, 0.1, (V, H)).astype(dtype)
    return h, W, np.zeros(V, dtype), rng.integers(0, V, N)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="700,650,10000", help="N,H,V")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    N, H, V = (int(s) for s in args.shape.split(","))
    h, W, b, targets = make_problem(N, H, V, args.dtype)
    gemm = blas.sgemm if args.dtype == "float32" else blas.dgemm

    def scipy_gemms():
        Y = gemm(1.0, h, W, trans_b=True)
        gemm(1.0, Y, h, trans_a=True)
        gemm(1.0, Y, W)

    def numpy_gemms():
        Y = h @ W.T
        Y.T @ h
        Y @ W

    runs = {
        "compiled": lambda: fastbptt.softmax_cross_entropy(h, W, b, targets),
        "scipy 3 GEMMs": scipy_gemms,
        "numpy 3 GEMMs": numpy_gemms,
        "reference": lambda: fastbptt.reference.softmax_cross_entropy(h, W, b, targets),
    }
    times = {name: [] for name in runs}
    with threadpool_limits(limits=1):
        for _ in range(args.repeat):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    flops = 6 * N * H * V
    print(f"softmax head N,H,V={N},{H},{V} {args.dtype}, one thread, "
          f"{args.repeat} interleaved rounds")
    for name, t in times.items():
        median = float(np.median(t))
        line = f"{name:14s} median {median * 1e3:10.3f} ms  {flops / median / 1e9:6.1f} GFLOP/s"
        if len(t) <= 10:
            line += f"  all {[round(x * 1e3, 1) for x in t]}"
        print(line)


if __name__ == "__main__":
    main()
