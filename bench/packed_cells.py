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
"""
import argparse

import numpy as np

from fastbptt import bench
from fastbptt.bench.problems import compiled_step_form
from fastbptt.cells import driver
from fastbptt.runtime import packing

# the bench shapes with B in 5-64 (fastbptt.bench.problems.ISSUE_SHAPES)
SHAPES = "100,32,256,256;35,20,650,650;50,64,1024,1024"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=SHAPES, help="T,B,I,H;...")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=11)
    opts = parser.parse_args(argv)

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
                    forms[setting] = compiled_step_form(cell, B, H, opts.dtype)
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
