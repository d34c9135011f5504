"""The two costs behind the B = 1 regime: the fixed cost of one call (validation,
allocation, dispatch: forward+backward at T = B = I = H = 1) and the per-step cost
(forward+backward time / T at B = 1, I = H = 128) from T = 100 to T = 100,000, whose
spread says whether the cost grows linearly in T. One thread, medians.

    python bench/per_step_cost.py --cells rnn,lstm,gru --dtype float32
"""
import argparse
from functools import partial

import fastbptt
from fastbptt import bench


def median_seconds(run, min_repeat=5):
    """Median of as many timed calls as fit in about 2 s (min_repeat to 20000), after a
    warm-up call that also sizes the count (fastbptt.bench.time_call)."""
    repeat = partial(bench.adaptive_repeat, budget=2.0, min_repeat=min_repeat,
                     max_repeat=20000)
    return bench.time_call(run, repeat).median


def forward_only(cell, problem):
    forward = getattr(fastbptt, bench.CELLS[cell].forward)
    return lambda: forward(*problem.args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--H", type=int, default=128)
    parser.add_argument("--T", default="100,1000,10000,100000")
    opts = parser.parse_args(argv)
    Ts = [int(t) for t in opts.T.split(",")]
    print("\n".join(bench.machine_lines()))
    with bench.thread_limit(1):
        print(f"{opts.dtype}, one thread, medians")
        print("| cell | fixed cost fwd+bwd us (T=B=I=H=1) | forward only us | "
              + " | ".join(f"us/step T={T}" for T in Ts) + " | spread |")
        print("| ---- | ---: | ---: | " + " | ".join("---:" for _ in Ts) + " | ---: |")
        for cell in opts.cells.split(","):
            tiny = bench.make_problem(cell, 1, 1, 1, 1, opts.dtype)
            fixed = median_seconds(bench.runner(cell, "compiled", tiny))
            fwd = median_seconds(forward_only(cell, tiny))
            per_step = []
            for T in Ts:
                p = bench.make_problem(cell, T, 1, opts.H, opts.H, opts.dtype)
                per_step.append(median_seconds(bench.runner(cell, "compiled", p),
                                               min_repeat=3) / T)
            spread = max(per_step) / min(per_step) - 1
            print(f"| {cell} | {fixed * 1e6:.1f} | {fwd * 1e6:.1f} | "
                  + " | ".join(f"{s * 1e6:.2f}" for s in per_step)
                  + f" | {spread:.0%} |", flush=True)


if __name__ == "__main__":
    main()
