"""Where the batch split starts to pay (fastbptt.cells.batch_split.MIN_SPLIT_FLOPS).

At 2 BLAS threads, forward+backward of each problem with the split (threshold 0) against
without it (threshold infinite: the whole call on one thread), interleaved; the table
gives the forward FLOPs 2*T*B*(I+H)*G*H of each and split / whole (below 1: the split
pays). The threshold is put where the ratio falls below 1 and stays there.

    python bench/batch_split_threshold.py --cells rnn,lstm --repeat 21
"""
import argparse

import fastbptt
from fastbptt import bench
from fastbptt.bench.problems import make_problem, runner
from fastbptt.cells import batch_split

# (T, B, H) with I = H: from far below to well above the threshold
SHAPES = [(10, 2, 16), (20, 4, 32), (25, 8, 32), (50, 4, 64), (25, 8, 64), (50, 8, 64),
          (50, 16, 64), (50, 8, 128), (100, 16, 128), (100, 32, 256)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=None)
    opts = parser.parse_args(argv)
    threshold = batch_split.MIN_SPLIT_FLOPS
    print("| cell | T,B,I=H | forward MFLOP | whole ms | split ms | split / whole |")
    print("|---|---|---:|---:|---:|---:|")
    try:
        with fastbptt.threads(2):
            for cell in opts.cells.split(","):
                G = bench.CELLS[cell].gates
                for T, B, H in SHAPES:
                    run = runner(cell, "compiled", make_problem(cell, T, B, H, H, opts.dtype))

                    def whole(run=run):
                        batch_split.MIN_SPLIT_FLOPS = float("inf")
                        run()

                    def split(run=run):
                        batch_split.MIN_SPLIT_FLOPS = 0
                        run()

                    t = bench.time_interleaved({"whole": whole, "split": split}, opts.repeat)
                    w, s = t["whole"].median * 1e3, t["split"].median * 1e3
                    mflop = 2 * T * B * 2 * H * G * H / 1e6
                    print(f"| {cell} | {T},{B},{H} | {mflop:.2f} | {w:.3f} | {s:.3f} | "
                          f"{s / w:.2f} |", flush=True)
    finally:
        batch_split.MIN_SPLIT_FLOPS = threshold
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
