"""Whole compiled forward+backward calls with and without the packed per-step product.

For each cell and shape, the compiled run (fastbptt.bench's "compiled" runner: forward
and backward through all T steps, dh at every step) under three settings of the per-step
product, interleaved in one process, one thread, medians:

    openblas   no packing: the forms step_form picks without a packer (OpenBLAS GEMM)
    own        the own packer (packed_gemm.h) wherever the policy lets it pack
    mkl        MKL's packed GEMM wherever the policy lets it pack (if the mkl package
               is installed)

    python bench/packed_cells.py --repeat 15
    python bench/packed_cells.py --shapes 100,32,256,256 --cells lstm --dtype float64

Ratios openblas / setting above 1 mean the setting is faster. On a busy machine they
are provisional.

--few-rows compares instead, at B <= GEMV_ROWS, the two forms step_form chooses between
there (the decision behind spec.PACKED_MIN_STEPS): "gemv", one OpenBLAS GEMV per row, and
"packed", the own packer forced at every such shape of more than one step; the table gives
gemv / packed of the medians and of the minima, and the form the policy picks:

    python bench/packed_cells.py --few-rows --dtype float32,float64 --repeat 15
"""
import argparse
import statistics

import numpy as np

from fastbptt import bench
from fastbptt.bench.problems import compiled_step_form
from fastbptt.cells import driver
from fastbptt.cells.spec import GEMV_ROWS
from fastbptt.runtime import packing

# the bench shapes with B in 5-64 (fastbptt.bench.problems.ISSUE_SHAPES)
SHAPES = "100,32,256,256;35,20,650,650;50,64,1024,1024"
# B <= GEMV_ROWS: the B = 1 shapes, B = 2 and 4, and T from 5 to 100 at H = 100
FEW_ROWS_SHAPES = ("100,1,32,32;25,1,100,100;1000,1,128,128;100,2,128,128;100,4,256,256;"
                   "5,1,100,100;10,1,100,100;16,1,64,64;32,1,64,64;50,1,100,100;"
                   "100,1,100,100;16,4,256,256")


def few_rows(opts):
    """gemv against the forced packed form at B <= GEMV_ROWS, interleaved, one thread."""
    policy = driver.step_form

    def gemv(spec, B, H, dtype, packer=None, steps=None):
        return policy(spec, B, H, dtype, None, steps)

    def packed(spec, B, H, dtype, packer=None, steps=None):
        # the own packer's form wherever it may pack at all (not one step)
        return policy(spec, B, H, dtype, "own", None if steps != 1 else 1)

    before = packing.set_packer("own")
    print("\n".join(bench.machine_lines()))
    print(f"gemv against packed (own packer) at B <= {GEMV_ROWS}, {opts.repeat} interleaved "
          "repeats, one thread")
    print("| cell | T,B,I,H | dtype | gemv ms | packed ms | median ratio | min ratio | "
          "policy |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    try:
        for shape in (opts.shapes or FEW_ROWS_SHAPES).split(";"):
            T, B, I, H = map(int, shape.split(","))
            if B > GEMV_ROWS or T < 2:
                raise SystemExit(f"--few-rows takes B <= {GEMV_ROWS} and T >= 2: {shape}")
            for dtype in opts.dtype.split(","):
                for cell in opts.cells.split(","):
                    problem = bench.make_problem(cell, T, B, I, H, dtype)
                    runs = {}
                    for name, form in (("gemv", gemv), ("packed", packed)):
                        run = bench.runner(cell, "compiled", problem)

                        def timed(run=run, form=form):
                            driver.step_form = form
                            try:
                                run()
                            finally:
                                driver.step_form = policy
                        runs[name] = timed
                    with bench.thread_limit(1):
                        timings = bench.time_interleaved(runs, opts.repeat)
                    g, p = timings["gemv"].times, timings["packed"].times
                    med_g, med_p = statistics.median(g), statistics.median(p)
                    print(f"| {cell} | {shape} | {dtype} | {med_g * 1e3:.3f} | "
                          f"{med_p * 1e3:.3f} | {med_g / med_p:.2f} | {min(g) / min(p):.2f} | "
                          f"{compiled_step_form(cell, B, H, dtype, T)} |", flush=True)
    finally:
        packing.set_packer(before)
    return np.nan


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=None, help="T,B,I,H;...")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--dtype", default="float32",
                        help="one dtype (with --few-rows: comma-separated)")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--few-rows", action="store_true",
                        help=f"gemv against packed at B <= {GEMV_ROWS} (see above)")
    opts = parser.parse_args(argv)
    if opts.few_rows:
        return few_rows(opts)
    opts.shapes = opts.shapes or SHAPES

    settings = ["openblas", "own"] + (["mkl"] if packing.packer() == "mkl" else [])
    real_packer = driver.packer
    print("\n".join(bench.machine_lines()))
    print(f"packers: {settings[1:]}, {opts.repeat} interleaved repeats, one thread")
    print("| cell | T,B,I,H | dtype | openblas ms | " +
          " | ".join(f"{s} form | openblas/{s}" for s in settings[1:]) + " |")
    print("|---|---|---|---:|" + "---|---:|" * (len(settings) - 1))
    for shape in opts.shapes.split(";"):
        T, B, I, H = map(int, shape.split(","))
        for cell in opts.cells.split(","):
            problem = bench.make_problem(cell, T, B, I, H, opts.dtype)
            runs = {}
            forms = {}
            for setting in settings:
                run = bench.runner(cell, "compiled", problem)

                def timed(run=run, setting=setting):
                    # the setting is applied around each timed call, so that the
                    # interleaved calls of the others are not affected
                    if setting == "openblas":
                        driver.packer = lambda: None
                    else:
                        packing.set_packer(setting)
                    try:
                        run()
                    finally:
                        driver.packer = real_packer
                runs[setting] = timed
                if setting != "openblas":
                    packing.set_packer(setting)
                    forms[setting] = compiled_step_form(cell, B, H, opts.dtype, T)
            with bench.thread_limit(1):
                timings = bench.time_interleaved(runs, opts.repeat)
            med = {name: t.median for name, t in timings.items()}
            cells = " | ".join(f"{forms[s]} | {med['openblas'] / med[s]:.2f}"
                               for s in settings[1:])
            print(f"| {cell} | {shape} | {opts.dtype} | {med['openblas'] * 1e3:.1f} | "
                  f"{cells} |", flush=True)
    packing.set_packer(settings[-1])
    return np.nan


if __name__ == "__main__":
    main()
