"""The thread policy under load (issue 14, item 5): with a CPU-bound process busy on the
other core, is any row of `fastbptt bench --threads all` more than 1.2x slower than its
one-thread row, and is any drop-in compat example slower than its NumPy original?

    python bench/load_test.py                     # default shapes, float32 and float64
    python bench/load_test.py --full --limit 1.2  # the issue's six shapes

A hog (a Python busy loop in a subprocess, pinned to the last CPU where the platform can
pin) runs for the whole test. Then:

- `fastbptt bench --threads 1,all --json --no-reference --no-torch --no-roofline` runs in a
  subprocess of this interpreter; each row at all cores is compared with its row at one
  thread (the two are measured one after the other, under the same load);
- bench/compat_timings.py's min-char-rnn lossFun (the script's as written against
  fastbptt.compat.minchar's) and cs231n model step (examples/cs231n_model.py on its NumPy
  layers against fastbptt.compat.cs231n), interleaved, at the default thread count (the
  one a user gets: all cores, for numpy's OpenBLAS as for scipy's).

Prints a Markdown table of each and a verdict line; exits 1 when a ratio is over the limit
(so that a quiet-machine run can gate a change). Timings on a machine that other work
shares are provisional: read them as a check of the policy, not as figures.
"""
import argparse
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent

HOG = "while True:\n    pass\n"


@contextlib.contextmanager
def cpu_hog(pin=True):
    """A busy-looping subprocess for the duration of the block, pinned to the last CPU
    when the platform allows it; yields the CPU it is pinned to (None: not pinned)."""
    proc = subprocess.Popen([sys.executable, "-c", HOG])
    cpu = None
    # a SIGTERM (a timeout) must still end the hog: make it an exception here
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            cpu = (os.cpu_count() or 1) - 1
            os.sched_setaffinity(proc.pid, {cpu})
        time.sleep(0.5)   # let it start spinning
        yield cpu
    finally:
        proc.kill()
        proc.wait()
        signal.signal(signal.SIGTERM, previous)


def bench_rows(extra):
    """The JSON rows of `fastbptt bench --threads 1,all` (compiled only) in a subprocess."""
    cmd = [sys.executable, "-m", "fastbptt", "bench", "--threads", "1,all", "--json",
           "--no-reference", "--no-torch", "--no-roofline", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["rows"]


def thread_ratios(rows):
    """[(shape, dtype, cell, ms at 1 thread, ms at all, all / 1)] for each row pair."""
    by_key = {}
    for row in rows:
        key = (tuple(row["shape"]), row["dtype"], row["cell"])
        by_key.setdefault(key, {})[row["threads"]] = row["compiled_ms"]
    out = []
    for (shape, dtype, cell), times in by_key.items():
        if 1 in times and len(times) > 1:
            many = max(times)
            out.append((shape, dtype, cell, times[1], times[many],
                        times[many] / times[1]))
    return out


def compat_ratios(repeat):
    """[(case, NumPy original ms, compat ms, compat / original)] at the default threads
    (bench/compat_timings.py's cases, timed at the count it is given)."""
    sys.path.insert(0, str(HERE))
    import compat_timings

    out = []
    for V, H, T in ((65, 100, 25), (65, 100, 100)):
        t, _ = compat_timings.minchar_lossfun(V, H, T, repeat)
        out.append((f"min-char-rnn lossFun V={V} H={H} T={T}", t["script"] * 1e3,
                    t["compat"] * 1e3, t["compat"] / t["script"]))
    for cell, N, T, V, D, H in (("lstm", 2, 50, 16, 16, 32), ("rnn", 2, 50, 16, 16, 32),
                                ("lstm", 8, 32, 16, 16, 64)):
        t = compat_timings.model_step(cell, N, T, V, D, H, repeat)
        out.append((f"cs231n model step {cell} N={N} T={T} H={H}", t["numpy"] * 1e3,
                    t["compat"] * 1e3, t["compat"] / t["numpy"]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's six shapes")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--limit", type=float, default=1.2,
                        help="the largest all-cores / one-thread ratio allowed (default 1.2)")
    parser.add_argument("--repeat", type=int, default=15, help="rounds per compat case")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="leave the hog to the scheduler")
    parser.add_argument("--no-compat", dest="compat", action="store_false")
    parser.add_argument("--no-bench", dest="bench", action="store_false",
                        help="the compat examples only")
    opts = parser.parse_args(argv)
    extra = ["--dtypes", opts.dtypes] + (["--full"] if opts.full else [])
    failed = False
    with cpu_hog(opts.pin) as cpu:
        where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
        print(f"CPU hog: a busy loop in a subprocess, {where}; {os.cpu_count()} CPUs")
        rows = thread_ratios(bench_rows(extra)) if opts.bench else []
        if opts.bench:
            print("\n### fastbptt bench --threads 1,all (compiled), under load\n")
            print("| T,B,I,H | dtype | cell | 1 thread ms | all ms | all / 1 |")
            print("|---|---|---|---:|---:|---:|")
        for shape, dtype, cell, one, many, ratio in rows:
            mark = " **over**" if ratio > opts.limit else ""
            failed |= ratio > opts.limit
            print(f"| {','.join(map(str, shape))} | {dtype} | {cell} | {one:.3f} | "
                  f"{many:.3f} | {ratio:.2f}x{mark} |")
        if opts.compat:
            print("\n### compat examples against their NumPy originals, default threads, "
                  "under load\n")
            print("| case | NumPy ms | compat ms | compat / NumPy |")
            print("|---|---:|---:|---:|")
            for case, numpy_ms, compat_ms, ratio in compat_ratios(opts.repeat):
                mark = " **slower**" if ratio > 1 else ""
                failed |= ratio > 1
                print(f"| {case} | {numpy_ms:.3f} | {compat_ms:.3f} | {ratio:.2f}{mark} |")
    print(f"\n{'FAIL' if failed else 'PASS'}: limit {opts.limit}x for the thread rows, "
          f"1.0 for the compat examples")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
