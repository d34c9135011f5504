"""The fixed cost of one call: forward and backward of every cell on a problem so small
(T = 1, B = 1, I = H = 8 by default) that the arithmetic is negligible and what is timed
is validation, allocation, dispatch and the kernel call itself.

    python bench/fixed_cost.py                       # this build, one thread
    python bench/fixed_cost.py --against /path/to/other/venv/bin/python --rounds 5

With --against, the same probe runs in the other interpreter (another build of fastbptt,
for example the commit before a change) and in this one, alternately, `--rounds` times:
each round is one subprocess per build, so both see the same machine state within a few
seconds of each other. The table gives each build's median over rounds of the per-round
medians, and new/old.

The timer is fastbptt.bench.harness, loaded from this checkout by file path, so that an
older build without that module can be probed with the same timer.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, os.pardir, "src", "fastbptt", "bench", "harness.py")
CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}   # the probe must run on builds before CellSpec


def _harness():
    spec = importlib.util.spec_from_file_location("_fixed_cost_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe(T, B, H, dtype, calls, blocks):
    """{"<cell> forward": µs, "<cell> backward": µs}: the median over `blocks` timed
    blocks of `calls` calls each, at one BLAS thread."""
    import numpy as np

    import fastbptt

    harness = _harness()
    rng = np.random.default_rng(0)
    out = {}
    with harness.thread_limit(1):
        for cell in CELLS:
            G = GATES[cell]
            x = rng.standard_normal((T, B, H)).astype(dtype)
            states = [np.zeros((B, H), dtype)] * (2 if cell == "lstm" else 1)
            W_ih, W_hh = (0.1 * rng.standard_normal((G * H, H)).astype(dtype) for _ in "ab")
            b_ih, b_hh = (np.zeros(G * H, dtype) for _ in "ab")
            fwd = getattr(fastbptt, f"{cell}_forward")
            bwd = getattr(fastbptt, f"{cell}_backward")
            h, cache = fwd(x, *states, W_ih, W_hh, b_ih, b_hh)
            dh = np.ones_like(h)
            runs = {"forward": lambda: fwd(x, *states, W_ih, W_hh, b_ih, b_hh),
                    "backward": lambda: bwd(dh, cache)}
            timings = harness.time_interleaved(runs, repeat=blocks, number=calls)
            for name, timing in timings.items():
                out[f"{cell} {name}"] = timing.median * 1e6
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", type=int, default=1)
    parser.add_argument("--B", type=int, default=1)
    parser.add_argument("--H", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed block")
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", help="another interpreter (build) to compare with")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    sizes = (opts.T, opts.B, opts.H, opts.dtype, opts.calls, opts.blocks)
    if opts.worker:
        print(json.dumps(probe(*sizes)))
        return
    builds = {"this": sys.executable}
    if opts.against:
        builds = {"old": opts.against, "new": sys.executable}
    argv = [os.path.abspath(__file__), "--worker", "--T", str(opts.T), "--B", str(opts.B),
            "--H", str(opts.H), "--dtype", opts.dtype, "--calls", str(opts.calls),
            "--blocks", str(opts.blocks)]
    rounds = {name: [] for name in builds}
    for _ in range(opts.rounds):
        for name, python in builds.items():
            done = subprocess.run([python] + argv, capture_output=True, text=True,
                                  check=True, cwd="/")
            rounds[name].append(json.loads(done.stdout.splitlines()[-1]))
    print(f"fixed cost per call, µs: T={opts.T}, B={opts.B}, I=H={opts.H}, {opts.dtype}, "
          f"one thread; median over {opts.rounds} rounds of the median of {opts.blocks} "
          f"blocks of {opts.calls} calls")
    names = list(builds)
    header = "| call | " + " | ".join(names) + (" | new/old |" if len(names) == 2 else " |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for key in rounds[names[0]][0]:
        medians = [statistics.median(r[key] for r in rounds[name]) for name in names]
        row = f"| {key} | " + " | ".join(f"{m:.1f}" for m in medians)
        if len(names) == 2:
            row += f" | {medians[1] / medians[0]:.2f}"
        print(row + " |")


if __name__ == "__main__":
    main()
