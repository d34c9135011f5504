"""Per-step cost at B = 1 over T, forward+backward as one call and split into forward and
backward, with the system time and minor page faults per call: the probe behind
RESULTS.md's "Per-step cost" sections.

    python bench/per_step_split.py --cells rnn,lstm,gru --H 128 --rounds 9

One BLAS thread, float32; inputs are made once per T (bench.make_problem), so a call's
time is the kernels' and wrappers' only. The T values are interleaved: every round runs
a batch of calls at each T in turn (about the same time per batch, --batch-seconds;
fastbptt.bench.time_interleaved), so a slow minute of this shared VM lands on every T
alike instead of on whichever T was being timed then. Each call times its own forward
and backward (and reads the system time and faults around them), which the harness keeps
per call. The table gives medians over all timed calls of all rounds, and the
spread of the fwd+bwd column: max/min - 1 over T.
"""
import argparse
import resource
import time

import numpy as np

from fastbptt import bench

TS = (100, 1000, 10000, 100000)


def make_call(cell, T, H):
    """A function timing one forward+backward: returns (total, forward, backward, system)
    seconds and the minor faults of the call."""
    p = bench.make_problem(cell, T, 1, H, H, np.float32, seed=0)
    api = bench.BACKENDS["compiled"]
    forward = getattr(api, bench.CELLS[cell].forward)
    backward = getattr(api, bench.CELLS[cell].backward)
    args = p.args

    def call():
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        _, cache = forward(*args)
        t1 = time.perf_counter()
        backward(p.dh, cache)
        t2 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        return (t2 - t0, t1 - t0, t2 - t1, r1.ru_stime - r0.ru_stime,
                r1.ru_minflt - r0.ru_minflt)

    call()   # warm-up: first-touch of the inputs, the kept workspace
    return call


def probe(cell, H, Ts, rounds, batch_seconds):
    calls = {T: make_call(cell, T, H) for T in Ts}
    # calls per batch from one timed call each, so every T gets ~batch_seconds a round
    per_batch = {T: max(1, int(batch_seconds / calls[T]()[0])) for T in Ts}
    # the harness interleaves the batches and keeps what each timed call measured
    timings = bench.time_interleaved(calls, rounds, number=per_batch, keep_results=True)
    rows = []
    for T in Ts:
        s = np.array(timings[T].results)
        total, fwd, bwd, system, faults = np.median(s, axis=0)
        rows.append((T, len(s), total / T * 1e6, fwd / T * 1e6, bwd / T * 1e6,
                     s[:, 3].mean() / T * 1e6, s[:, 4].mean()))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--H", type=int, default=128)
    parser.add_argument("--T", default=",".join(map(str, TS)))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch-seconds", type=float, default=0.3)
    opts = parser.parse_args(argv)
    Ts = [int(t) for t in opts.T.split(",")]
    print("\n".join(bench.machine_lines()))
    print(f"B = 1, H = I = {opts.H}, float32, one BLAS thread; {opts.rounds} interleaved "
          f"rounds of ~{opts.batch_seconds} s per T; us per step, median over the calls")
    print("| cell | T | calls | fwd+bwd | forward | backward | system (mean) "
          "| minor faults per call |")
    print("| ---- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with bench.thread_limit(1):
        for cell in opts.cells.split(","):
            rows = probe(cell, opts.H, Ts, opts.rounds, opts.batch_seconds)
            for T, n, total, fwd, bwd, system, faults in rows:
                print(f"| {cell} | {T} | {n} | {total:.2f} | {fwd:.2f} | {bwd:.2f} | "
                      f"{system:.2f} | {faults:.0f} |")
            totals = [r[2] for r in rows]
            print(f"| {cell} | spread | | {max(totals) / min(totals) - 1:.1%} | | | | |",
                  flush=True)


if __name__ == "__main__":
    main()
