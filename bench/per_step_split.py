"""Per-step cost at B = 1 over T, forward+backward as one call and split into forward and
backward, with the minor page faults per call: the probe behind RESULTS.md's "Per-step
cost: a closer look".

    python bench/per_step_split.py --cells rnn,lstm,gru --H 128

Medians of timed calls after one warm-up, one BLAS thread, float32; inputs are made once
per T (bench.make_problem), so a call's time is the kernels' and wrappers' only.
"""
import argparse
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastbptt import bench

STEPS = ((100, 2000), (1000, 200), (10000, 20), (100000, 3))   # (T, timed calls)


def per_step_us(cell, T, H, reps):
    """(fwd+bwd, forward, backward) median us per step, and minor faults per call."""
    p = bench.make_problem(cell, T, 1, H, H, np.float32, seed=0)
    api = bench.BACKENDS["compiled"]
    forward = getattr(api, bench.CELLS[cell].forward)
    backward = getattr(api, bench.CELLS[cell].backward)
    args = (p.x, *p.states, p.W_ih, p.W_hh, p.b_ih, p.b_hh)
    _, cache = forward(*args)
    backward(p.dh, cache)
    total, fwd, bwd = [], [], []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(reps):
        t0 = time.perf_counter()
        _, cache = forward(*args)
        t1 = time.perf_counter()
        backward(p.dh, cache)
        t2 = time.perf_counter()
        total.append(t2 - t0)
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / reps
    scale = 1e6 / T
    return (np.median(total) * scale, np.median(fwd) * scale, np.median(bwd) * scale, faults)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--H", type=int, default=128)
    opts = parser.parse_args(argv)
    print(f"B = 1, H = I = {opts.H}, float32, one BLAS thread; us per step (median)")
    print("| cell | T | fwd+bwd | forward | backward | minor faults per call |")
    print("| ---- | ---: | ---: | ---: | ---: | ---: |")
    with threadpool_limits(limits=1):
        for cell in opts.cells.split(","):
            for T, reps in STEPS:
                total, fwd, bwd, faults = per_step_us(cell, T, opts.H, reps)
                print(f"| {cell} | {T} | {total:.2f} | {fwd:.2f} | {bwd:.2f} | {faults:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
