"""The worker of `compare_builds.py --paired`: one per build, run by that build's python.

It reads JSON commands from stdin, one per line, and answers each with one JSON line:
    {"op": "setup", "cell", "shape": [T, B, I, H], "dtype", "threads"}  -> {"ok": true}
    {"op": "time", "number": n}   -> {"seconds": wall time of n forward+backward calls}
The timed unit is `fastbptt bench`'s: one forward and one backward through all T steps
with dh at every step, on make_problem's numbers (U(-1/sqrt(H), 1/sqrt(H)) weights,
standard normal x, states and dh). It uses only the public fastbptt functions, which the
pre-CellSpec build has under the same names, so that one worker serves every build.
"""
import json
import sys
from time import perf_counter

import numpy as np
from threadpoolctl import threadpool_limits

import fastbptt

GATES = {"rnn": 1, "lstm": 4, "gru": 3}   # the three cells of every build compared
STATES = {"rnn": 1, "lstm": 2, "gru": 1}


def make_run(cell, T, B, I, H, dtype, seed=0):
    G = GATES[cell]
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    states = [rng.standard_normal((B, H)).astype(dtype) for _ in range(STATES[cell])]
    W_ih = rng.uniform(-k, k, (G * H, I)).astype(dtype)
    W_hh = rng.uniform(-k, k, (G * H, H)).astype(dtype)
    b_ih = rng.uniform(-k, k, G * H).astype(dtype)
    b_hh = rng.uniform(-k, k, G * H).astype(dtype)
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    forward = getattr(fastbptt, f"{cell}_forward")
    backward = getattr(fastbptt, f"{cell}_backward")

    def run():
        _, cache = forward(x, *states, W_ih, W_hh, b_ih, b_hh)
        return backward(dh, cache)
    return run


def main():
    run = None
    limits = None
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "setup":
            if limits is not None:
                limits.restore_original_limits()
            limits = threadpool_limits(limits=command["threads"])
            run = make_run(command["cell"], *command["shape"], command["dtype"])
            run()   # first touch of the buffers, BLAS thread start-up
            answer = {"ok": True}
        else:
            start = perf_counter()
            for _ in range(command["number"]):
                run()
            answer = {"seconds": perf_counter() - start}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
