"""Peak memory and time of one forward+backward with and without checkpoint=, each in a
fresh subprocess so that the peak is that call's alone.

Peak memory is tracemalloc's peak of NumPy allocations (NumPy reports its buffers to
tracemalloc) during forward+backward, beyond what the inputs (x, weights, states, dh)
already hold, with the recycled buffers released before the traced call so that it
allocates all of its own; time is the median of --repeat calls after a warm-up
(fastbptt.bench.time_call), untraced, in the same subprocess (tracemalloc slows
allocation a little).

    python bench/checkpoint_memory.py --T 10000,100000 --B 1 --H 128 --dtype float32
"""
import argparse
import json
import subprocess
import sys

from fastbptt import bench

CHILD = r"""
import json, sys, tracemalloc
import fastbptt
from fastbptt import bench
cell, T, B, H, dtype, checkpoint, repeat = sys.argv[1:]
T, B, H, repeat = int(T), int(B), int(H), int(repeat)
checkpoint = {"none": None, "true": True}.get(checkpoint, checkpoint)
checkpoint = int(checkpoint) if isinstance(checkpoint, str) else checkpoint
p = bench.make_problem(cell, T, B, H, H, dtype)
forward = getattr(fastbptt, bench.CELLS[cell].forward)
backward = getattr(fastbptt, bench.CELLS[cell].backward)

def run():
    h, cache = forward(*p.args, checkpoint=checkpoint)
    return backward(p.dh, cache)

with bench.thread_limit(1):
    run()
    # the traced call allocates its own buffers: none recycled from the warm-up
    fastbptt.release_workspace()
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    timing = bench.time_call(run, repeat)
returned = p.x.nbytes + p.dh.nbytes   # the output h (like dh) and dx (like x)
print(json.dumps({"peak_mb": peak / 2**20, "beyond_mb": (peak - returned) / 2**20,
                  "ms": timing.median * 1e3}))
"""


def measure(cell, T, B, H, dtype, checkpoint, repeat):
    out = subprocess.run([sys.executable, "-c", CHILD, cell, str(T), str(B), str(H), dtype,
                          str(checkpoint).lower(), str(repeat)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--T", default="10000,100000")
    parser.add_argument("--B", type=int, default=1)
    parser.add_argument("--H", type=int, default=128, help="I = H")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)
    print("\n".join(bench.machine_lines()))
    print(f"B={opts.B}, I=H={opts.H}, {opts.dtype}, one thread; peak: tracemalloc, MiB "
          f"allocated during forward+backward (beyond: less the returned h and dx); "
          f"ms: median of {opts.repeat}")
    print("| cell | T | checkpoint | k | peak MiB | beyond h and dx MiB | ms |")
    print("| ---- | -: | ---------- | -: | -------: | ------------------: | -: |")
    for cell in opts.cells.split(","):
        for T in map(int, opts.T.split(",")):
            for checkpoint in ("none", "true"):
                r = measure(cell, T, opts.B, opts.H, opts.dtype, checkpoint, opts.repeat)
                k = "-" if checkpoint == "none" else int(-(-T ** 0.5 // 1))
                print(f"| {cell} | {T} | {checkpoint} | {k} | {r['peak_mb']:.1f} | "
                      f"{r['beyond_mb']:.1f} | {r['ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
