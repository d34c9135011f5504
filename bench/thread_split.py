"""Should the per-step GEMMs and the batched GEMMs run on different thread counts?

For each shape, the GEMM calls of one compiled forward+backward (as
fastbptt._kernels.gemm_roofline makes them, time-major, transposed form where the
wrappers pick it) are timed in two parts, each at every thread count: the 2*T small
per-step products, and the four batched products (input projection, dW_ih, dX, dW_hh).
If per-step is best at one count and batched at another, switching inside the call
would save the difference against the best single setting; the table shows both.
Called through fastbptt._kernels.blas.gemm_py/gemv_py from Python (~1 us a call, which
also weighs on the per-step part at B = 1: there the comparison across thread counts
still holds).

    python bench/thread_split.py --threads 1,all --dtype float32
"""
import argparse
import statistics
import time

import numpy as np

from fastbptt import bench
from fastbptt._step_form import step_form
from fastbptt._kernels.blas import gemm_py, gemv_py


def parts(cell, T, B, I, H, dtype):
    G = bench.CELLS[cell].gates
    GH = G * H
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T * B, I)).astype(dtype)
    W_ih = rng.standard_normal((GH, I)).astype(dtype)
    W_hh = rng.standard_normal((GH, H)).astype(dtype)
    W_hhT = np.ascontiguousarray(W_hh.T)
    P = np.zeros((T * B, GH), dtype)
    Hs = rng.standard_normal((T * B, H)).astype(dtype)
    h = np.ascontiguousarray(Hs[:B])
    dX = np.empty((T * B, I), dtype)
    dW_ih = np.empty((GH, I), dtype)
    dW_hh = np.empty((GH, H), dtype)
    form = step_form(cell, B, H, dtype)
    transposed = form == "transposed"
    out_f = np.empty((GH, B) if transposed else (B, GH), dtype)
    out_b = np.empty((H, B) if transposed else (B, H), dtype)
    dA = np.ascontiguousarray(P[:B])
    v_f, v_b = np.empty(GH, dtype), np.empty(H, dtype)

    def per_step():
        for _ in range(T):
            if form == "gemv":
                for b in range(B):   # one GEMV a row, as the kernels
                    gemv_py(False, 1.0, W_hh, h[b], 0.0, v_f)
            elif transposed:
                gemm_py(False, True, 1.0, W_hh, h, 0.0, out_f)
            else:
                gemm_py(False, True, 1.0, h, W_hh, 0.0, out_f)
        for _ in range(T):
            if form == "gemv":
                for b in range(B):
                    gemv_py(True, 1.0, W_hh, dA[b], 0.0, v_b)
            elif transposed:
                gemm_py(False, True, 1.0, W_hhT, dA, 0.0, out_b)
            else:
                gemm_py(False, False, 1.0, dA, W_hh, 0.0, out_b)

    def batched():
        gemm_py(False, True, 1.0, X, W_ih, 0.0, P)
        gemm_py(True, False, 1.0, P, X, 0.0, dW_ih)
        gemm_py(False, False, 1.0, P, W_ih, 0.0, dX)
        gemm_py(True, False, 1.0, P, Hs, 0.0, dW_hh)

    return {"per-step": per_step, "batched": batched}


def median_ms(run, repeat):
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--shapes", default="1000,1,128;100,32,256;35,20,650;50,64,1024",
                        help="T,B,H (I = H), ';'-separated")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", default="1,all")
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args(argv)
    counts = bench.thread_counts(opts.threads)
    print(f"{opts.dtype}, medians of {opts.repeat}, ms per forward+backward's GEMMs")
    print("| cell | T,B,H | " + " | ".join(f"per-step {n}t | batched {n}t" for n in counts)
          + " | best single | best split |")
    print("| --- | --- | " + " | ".join("---: | ---:" for _ in counts) + " | ---: | ---: |")
    for cell in opts.cells.split(","):
        for shape in opts.shapes.split(";"):
            T, B, H = map(int, shape.split(","))
            runs = parts(cell, T, B, H, H, opts.dtype)
            ms = {}
            for n in counts:
                with bench.thread_limit(n):
                    for name, run in runs.items():
                        ms[name, n] = median_ms(run, opts.repeat)
            single = min(ms["per-step", n] + ms["batched", n] for n in counts)
            split = min(ms["per-step", n] for n in counts) + min(ms["batched", n] for n in counts)
            print(f"| {cell} | {shape} | "
                  + " | ".join(f"{ms['per-step', n]:.2f} | {ms['batched', n]:.2f}" for n in counts)
                  + f" | {single:.2f} | {split:.2f} |", flush=True)


if __name__ == "__main__":
    main()
