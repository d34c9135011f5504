#!/usr/bin/env python
"""Fuzz every public function in tests/_registry.py with random valid and invalid calls.

    python tools/fuzz.py --calls 10000 --seed 0

Call i draws everything from numpy.random.default_rng([seed, i]): a registered function
(REGISTRY, plus FUZZ_EXTRA: the BLAS shim's test entry points),
a random problem (sizes 0..5, both dtypes, every layout, lengths or not), the compiled or
reference implementation, and, for most calls, one argument replaced by junk (wrong type,
dtype, ndim or shape, NaN, a huge broadcast view, an unknown keyword...). A valid call
must succeed; a junk call must succeed or raise one of the entry's documented exceptions
(TypeError, ValueError). Anything else is a failure, and a crash (segfault, abort) is
caught by running the calls in a child process with faulthandler on: the parent reports
the call that was running, then resumes after it. Reproduce one call with
`--calls 1 --start i --seed S --verbose`.

Exit status 0 when nothing failed and nothing crashed.
"""
import argparse
import faulthandler
import os
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

VALID_FRACTION = 0.25


def one_call(seed, i):
    """Run call i; returns (description, outcome) where outcome is "ok", "rejected" or
    a failure message."""
    import numpy as np
    from _registry import FUZZ_EXTRA, REGISTRY, mutate, random_case

    entries = REGISTRY + FUZZ_EXTRA
    rng = np.random.default_rng([seed, i])
    entry = entries[int(rng.integers(len(entries)))]
    case = random_case(rng)
    impl = entry.impls[int(rng.integers(len(entry.impls)))]
    what = f"call {i}: {entry.name} [{impl}] {case}"
    try:
        call = entry.build(case, impl)
    except Exception:
        return what, "builder failed (valid arguments rejected):\n" + traceback.format_exc()
    valid = rng.random() < VALID_FRACTION
    if not valid:
        label, call = mutate(call, rng)
        what += f" with {label}"
    try:
        call()
    except entry.exceptions as exc:
        if valid:
            return what, f"a valid call raised {type(exc).__name__}: {exc}"
        return what, "rejected"
    except Exception:
        return what, "undocumented exception:\n" + traceback.format_exc()
    return what, "ok"


def worker(seed, start, stop, progress_path, verbose):
    """Run calls start..stop-1. Before each call its index goes to progress_path, after
    it the outcome ("ok", "rejected" or "failed"), so that the parent can tell which call
    a crash interrupted; failures are printed to stdout."""
    faulthandler.enable()
    with open(progress_path, "a", buffering=1) as progress:
        for i in range(start, stop):
            progress.write(f"{i} ")
            what, outcome = one_call(seed, i)
            if outcome in ("ok", "rejected"):
                if verbose:
                    print(f"{what}: {outcome}", flush=True)
            else:
                print(f"FAIL {what}\n{outcome}\nEND", flush=True)
                outcome = "failed"
            progress.write(f"{outcome}\n")


def run(calls, seed, start=0, verbose=False):
    """Run the calls in child processes; returns a summary dict."""
    summary = {"calls": calls, "ok": 0, "rejected": 0, "failed": 0, "crashed": [],
               "failures": []}
    stop = start + calls
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        progress_path = os.path.join(tmp, "progress")
        open(progress_path, "w").close()
        while start < stop:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed",
                   str(seed), "--start", str(start), "--calls", str(stop - start),
                   "--progress", progress_path] + (["--verbose"] if verbose else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            for block in proc.stdout.split("FAIL ")[1:]:
                summary["failures"].append(block.split("\nEND")[0].strip())
            if verbose:
                print(proc.stdout)
            with open(progress_path) as f:
                last = f.read().splitlines()[-1:] or [""]
            if proc.returncode == 0 and last[0].split()[-1:] != [str(stop - 1)]:
                break
            # A crash (or any early exit): the last index without an outcome is the call
            # that was running; resume after it.
            crashed = int(last[0].split()[0]) if last[0] else start
            summary["crashed"].append(
                {"call": crashed, "returncode": proc.returncode,
                 "stderr": proc.stderr[-4000:]})
            with open(progress_path, "a") as f:
                f.write("crashed\n")
            start = crashed + 1
        with open(progress_path) as f:
            for line in f:
                outcome = line.split()[-1]
                if outcome in ("ok", "rejected", "failed"):
                    summary[outcome] += 1
    summary["seconds"] = time.perf_counter() - t0
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first call")
    parser.add_argument("--verbose", action="store_true", help="print every call")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        worker(opts.seed, opts.start, opts.start + opts.calls, opts.progress, opts.verbose)
        return 0
    s = run(opts.calls, opts.seed, opts.start, opts.verbose)
    for failure in s["failures"]:
        print("FAIL", failure, "\n")
    for crash in s["crashed"]:
        print(f"CRASH at call {crash['call']} (exit {crash['returncode']}):\n"
              f"{crash['stderr']}\n")
    print(f"fuzz: {s['calls']} calls, seed {opts.seed}: {s['ok']} succeeded, "
          f"{s['rejected']} rejected with a documented exception, {s['failed']} failed, "
          f"{len(s['crashed'])} crashed; {s['seconds']:.1f} s")
    return 0 if not s["failed"] and not s["crashed"] else 1


if __name__ == "__main__":
    sys.exit(main())
