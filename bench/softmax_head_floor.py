"""How close the compiled softmax head (fastbptt.softmax_cross_entropy) gets to its GEMM
floor, and where the reference stands.

The floor is the three products of the head at full size, Y = h W^T, Y^T h and Y W,
through scipy's BLAS (the one the compiled kernels call) and through NumPy's (the one the
reference calls), with nothing between them. The compiled kernel makes the same products
block by block, plus the softmax pass. All four are timed interleaved
(fastbptt.bench.time_interleaved), one thread, medians.

    python bench/softmax_head_floor.py --shape 700,650,10000 --dtype float32 --repeat 5
"""
import argparse

from scipy.linalg import blas

import fastbptt
from fastbptt import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="700,650,10000", help="N,H,V")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    N, H, V = (int(s) for s in args.shape.split(","))
    h, W, b, targets = bench.make_head_problem(N, H, V, args.dtype)   # bench/test_bench_losses.py's
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
    with bench.thread_limit(1):
        timings = bench.time_interleaved(runs, args.repeat)
    flops = bench.head_flops(N, H, V)
    print("\n".join(bench.machine_lines()))
    print(f"softmax head N,H,V={N},{H},{V} {args.dtype}, one thread, "
          f"{args.repeat} interleaved rounds after a warm-up")
    for name, timing in timings.items():
        median, t = timing.median, timing.times
        line = f"{name:14s} median {median * 1e3:10.3f} ms  {flops / median / 1e9:6.1f} GFLOP/s"
        if len(t) <= 10:
            line += f"  all {[round(x * 1e3, 1) for x in t]}"
        print(line)


if __name__ == "__main__":
    main()
