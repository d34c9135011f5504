#!/usr/bin/env python
"""Resident memory stays flat over many forward + backward calls of every registered
backward entry (tests/_registry.py; each runs its own forward), compiled by default.

    python tools/leakcheck.py --calls 10000            # the issue's full count
    python tools/leakcheck.py --calls 10000 --impl reference

After a warm-up (allocator pools, BLAS buffers, first-call imports), RSS is read from
/proc/self/statm (Linux) and must grow by less than --limit MB over the calls; calls per
function = --calls. Exit status 0 when every function stays within the limit.
"""
import argparse
import gc
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import numpy as np  # noqa: E402

from _registry import LOSSES, REGISTRY, Case  # noqa: E402

# Big enough that leaking one buffer per call shows: a (T+1, B, H) float64 state buffer
# is 34 KB, so 500 leaked calls would be 17 MB.
CASE = Case(T=32, B=8, I=16, H=16, dtype=np.float64, lengths=True, seed=0)


def rss_mb():
    """Resident set size of this process in MB (Linux /proc; else the peak from
    getrusage, which can only grow, so a flat peak is flat usage)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_growth(entry, calls, impl="compiled", warmup=200, case=CASE):
    """(MB before, MB after) `calls` calls of entry (fresh arguments each call, so the
    builders' own allocations are part of the loop, as in a training loop)."""
    cases = [Case(**{**case.__dict__, "seed": s, "batch_first": bool(s % 2)})
             for s in range(4)]
    for i in range(warmup):
        entry.build(cases[i % 4], impl)()
    gc.collect()
    before = rss_mb()
    for i in range(calls):
        entry.build(cases[i % 4], impl)()
    gc.collect()
    return before, rss_mb()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--limit", type=float, default=4.0, help="MB of growth allowed")
    parser.add_argument("--impl", default="compiled", choices=["compiled", "reference"])
    opts = parser.parse_args(argv)
    failed = False
    t0 = time.perf_counter()
    for entry in REGISTRY:
        # the backward entries run forward + backward; a loss computes both in one call
        if not entry.name.endswith("backward") and entry.name not in LOSSES:
            continue
        before, after = rss_growth(entry, opts.calls, opts.impl)
        ok = after - before < opts.limit
        failed |= not ok
        print(f"{entry.name:16s} {opts.impl}: {opts.calls} forward+backward calls, RSS "
              f"{before:.1f} -> {after:.1f} MB ({after - before:+.2f} MB) "
              f"{'ok' if ok else 'LEAK?'}", flush=True)
    print(f"leakcheck: {'FAILED' if failed else 'passed'} (limit {opts.limit} MB) in "
          f"{time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
