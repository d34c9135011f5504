"""The B = 1 gate-row split across two cores (issue 14 item 4), timed side by side.

At B = 1 the per-step product is a GEMV, z_t (GH) = W_hh (GH x H) h_{t-1} + b, then an
element-wise pass gives h_t (the RNN's tanh, G = 1; the LSTM's gates, G = 4, with c_t);
every step needs all of h_{t-1}, so the steps are serial. The forms (T-step loops timed in
C; bench/gate_split.h holds them and the math, bench/_gate_split.pyx wraps them, compiled
here at first use into build/gate_split/):

    whole      one thread, one GEMV over all GH rows a step (what the kernels do)
    halves     one thread, the split's two blocks of G*H/2 rows one after the other
    split      two threads, each the G*H/2 rows of its own half of the hidden units (for
               the LSTM rows i, f, g, o of units [0, H/2) and of [H/2, H), stored
               contiguously once per call: split_rows), its element-wise pass, then one
               spinning barrier a step (an atomic counter, sense-reversing, with a pause);
               "split futex" the same barrier sleeping in a futex instead of spinning
    fallback   the split with a spin budget per step: when the worker is later than
               --budget-us, the main thread takes its half (a compare-exchange on the
               worker's claim of the step, so exactly one thread computes it) and runs the
               rest of the call alone, in the split's order of operations (same bits)
    steal      the fallback without its flaw: the main thread gives up on a step even when
               the worker has begun it (the worker computes into a private slot and commits
               by compare-exchange; a late result is dropped), so a worker the scheduler
               stops mid-step costs the budget, not a slice
    barrier    the two threads' barrier alone, over empty steps: its own cost

"halves", "split", "fallback" and "steal" give the same bits; "whole" the same values to rounding
(checked before anything is timed, and by bench/test_gate_split.py). The two threads are
the caller's and one worker per call; the worker's start, the first barrier and the join
are outside the clock (as a persistent worker per process would make them). "pinned" runs
the main thread on the first CPU of the process's mask and the worker on the second;
"free" leaves both to the scheduler. The "+hog" forms run with a busy pure-Python
process pinned to the second CPU (started once, resumed with SIGCONT only around those
forms): issue 14 item 5's case, another process on the other core. Every round times
every form of every case once, the forms' order rotated from round to round; the table
gives us per step of "whole" and whole / form (above 1: the form is faster), from the
medians and from the minima over the rounds. BLAS runs on one thread per caller.

    python bench/gate_split.py --rounds 5
    python bench/gate_split.py --H 256,1024 --G 4 --dtype float32 --T 1000 --out gs.json

On a busy machine the figures are provisional: re-run on a quiet one.
"""
import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fastbptt import bench

HERE = Path(__file__).resolve().parent

# (name, form, pinned, hog, futex): what one round times per case
FORMS = [
    ("whole", "whole", True, False, False),
    ("halves", "halves", True, False, False),
    ("split", "split", True, False, False),
    ("split free", "split", False, False, False),
    ("split futex", "split", True, False, True),
    ("fallback", "fallback", True, False, False),
    ("steal", "steal", True, False, False),
    ("whole+hog", "whole", True, True, False),
    ("split+hog", "split", True, True, False),
    ("split free+hog", "split", False, True, False),
    ("split futex+hog", "split", True, True, True),
    ("fallback+hog", "fallback", True, True, False),
    ("fallback free+hog", "fallback", False, True, False),
    ("steal+hog", "steal", True, True, False),
    ("steal free+hog", "steal", False, True, False),
]
BARRIER_FORMS = [("barrier", True, False, False), ("barrier free", False, False, False),
                 ("barrier futex", True, False, True), ("barrier+hog", True, True, False),
                 ("barrier free+hog", False, True, False),
                 ("barrier futex+hog", True, True, True)]


def build():
    """Compile bench/_gate_split.pyx (once per change) and import it."""
    from setuptools import Extension

    from _probe_build import build_probe

    ext = Extension("_gate_split", [str(HERE / "_gate_split.pyx")],
                    include_dirs=[str(HERE)], depends=[str(HERE / "gate_split.h"),
                                                       str(HERE / "gate_split_template.h")],
                    extra_compile_args=["-O3", "-std=gnu11"], libraries=["pthread", "m"])
    return build_probe(ext, HERE.parent / "build" / "gate_split")


def split_rows(a, G):
    """W_hh's rows (or b's entries) in the split's order: for each half j of the hidden
    units, its rows of every gate, [i_j; f_j; g_j; o_j] (G = 4), contiguous.
    (GH, ...) -> (GH, ...), row g*H + j*H/2 + k moving to j*G*H/2 + g*H/2 + k."""
    H = a.shape[0] // G
    rest = a.shape[1:]
    blocks = a.reshape((G, 2, H // 2) + rest)
    return np.ascontiguousarray(np.swapaxes(blocks, 0, 1).reshape((G * H,) + rest))


class Case:
    """One shape and dtype: the weights in both row orders and the state histories."""

    def __init__(self, G, H, T, dtype, seed=0):
        if H % 2:
            raise ValueError(f"H must be even to split the units in halves, got {H}")
        rng = np.random.default_rng(seed)
        self.G, self.H, self.T, self.dtype = G, H, T, np.dtype(dtype)
        # a scale that keeps the gates out of saturation, so h_t depends on all of z_t
        self.W = (rng.standard_normal((G * H, H)) / math.sqrt(H)).astype(self.dtype)
        self.b = (0.1 * rng.standard_normal(G * H)).astype(self.dtype)
        self.Ws = split_rows(self.W, G)
        self.bs = split_rows(self.b, G)
        self.h = np.zeros((T + 1, H), self.dtype)
        self.c = np.zeros((T + 1, H), self.dtype)
        self.h[0] = rng.uniform(-1, 1, H)
        self.c[0] = rng.uniform(-1, 1, H)
        self.z = np.zeros(2 * G * H, self.dtype)
        self.priv = np.zeros(2 * H, self.dtype)

    def run(self, mod, form, cpus, budget_ns=0, futex=False):
        """(ns of the loop, abandoned-at step) of one form; h and c hold its result."""
        self.h[1:] = 0
        self.c[1:] = 0
        return mod.run(form, self.G, self.W, self.b, self.Ws, self.bs, self.h, self.c,
                       self.z, self.priv, cpus[0], cpus[1], budget_ns, futex)


def reference_chain(case, steps):
    """The first `steps` steps in float64 NumPy, in PyTorch's row order: (h, c) histories."""
    G, H = case.G, case.H
    W = case.W.astype(np.float64)
    b = case.b.astype(np.float64)
    h = [case.h[0].astype(np.float64)]
    c = [case.c[0].astype(np.float64)]
    for _ in range(steps):
        z = W @ h[-1] + b
        if G == 1:
            h.append(np.tanh(z))
            c.append(c[-1])
            continue
        i, f, g, o = z.reshape(4, H)
        sig = lambda v: 1 / (1 + np.exp(-v))   # noqa: E731
        c.append(sig(f) * c[-1] + sig(i) * np.tanh(g))
        h.append(sig(o) * np.tanh(c[-1]))
    return np.array(h), np.array(c)


def tolerance(dtype):
    return 2e-4 if np.dtype(dtype) == np.float32 else 1e-10


def check(mod, case, cpus, steps=None):
    """Every form against "whole", and "whole" against NumPy over its first steps: a form
    that is wrong is not timed. Raises AssertionError naming the form."""
    steps = case.T if steps is None else min(steps, case.T)
    want_h, want_c = reference_chain(case, steps)
    case.run(mod, "whole", cpus)
    whole = case.h.copy(), case.c.copy()
    tol = tolerance(case.dtype)
    for name, got in (("h", whole[0]), ("c", whole[1])):
        if case.G == 1 and name == "c":
            continue
        err = np.abs(got[:steps + 1] - (want_h if name == "h" else want_c)).max()
        if not err < tol:
            raise AssertionError(f"whole: {name} off NumPy by {err:.2e} over {steps} steps")
    halves = None
    for form, budget_ns, futex in (("halves", 0, False), ("split", 0, False),
                                   ("split", 0, True), ("fallback", 10**9, False),
                                   ("fallback", 0, False), ("steal", 10**9, False),
                                   ("steal", 0, False)):
        _, abandoned = case.run(mod, form, cpus, budget_ns, futex)
        got = case.h.copy(), case.c.copy()
        err = max(np.abs(got[0] - whole[0]).max(), np.abs(got[1] - whole[1]).max())
        if not err < tol:
            raise AssertionError(f"{form} (budget {budget_ns} ns, to one thread at step "
                                 f"{abandoned}): off whole by {err:.2e}")
        if halves is None:
            halves = got
        elif not (np.array_equal(got[0], halves[0]) and np.array_equal(got[1], halves[1])):
            raise AssertionError(f"{form} (budget {budget_ns} ns, to one thread at step "
                                 f"{abandoned}): not the same bits as halves")


class Hog:
    """A busy pure-Python process pinned to one CPU, paused (SIGSTOP) unless resumed."""

    def __init__(self, cpu):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        os.sched_setaffinity(self.proc.pid, {cpu})
        os.kill(self.proc.pid, signal.SIGSTOP)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()

    def busy(self, on):
        os.kill(self.proc.pid, signal.SIGCONT if on else signal.SIGSTOP)
        if on:
            time.sleep(0.02)   # let it reach its CPU before the clock starts


def two_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit(f"needs two CPUs, the process may run on {cpus}")
    return cpus[:2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--H", default="128,256,512,1024")
    parser.add_argument("--G", default="1,4", help="gates: 1 (rnn), 4 (lstm)")
    parser.add_argument("--dtype", default="float32,float64")
    parser.add_argument("--T", type=int, default=1000, help="steps per timed loop")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget-us", type=float, default=50.0,
                        help="the fallback's spin budget per step")
    parser.add_argument("--no-hog", action="store_true", help="skip the +hog forms")
    parser.add_argument("--forms", default=None,
                        help="comma-separated subset of the forms' names (whole always)")
    parser.add_argument("--out", default=None, help="write the per-round times as JSON here")
    opts = parser.parse_args(argv)

    mod = build()
    cpus = two_cpus()
    free = (-1, -1)
    pinned = tuple(cpus)
    budget_ns = int(opts.budget_us * 1e3)
    forms = [f for f in FORMS if not (opts.no_hog and f[3])]
    barrier_forms = [f for f in BARRIER_FORMS if not (opts.no_hog and f[2])]
    if opts.forms:
        wanted = set(opts.forms.split(",")) | {"whole"}
        forms = [f for f in forms if f[0] in wanted]
        barrier_forms = [f for f in barrier_forms if f[0] in wanted]

    cases = []
    with bench.thread_limit(1):
        for dtype in opts.dtype.split(","):
            for G in map(int, opts.G.split(",")):
                for H in map(int, opts.H.split(",")):
                    case = Case(G, H, opts.T, dtype)
                    check(mod, case, pinned, steps=20)
                    cases.append((case, {}))
        barrier_case = Case(1, 2, opts.T, "float64")
        barrier_times = {}

        print("\n".join(bench.machine_lines()))
        print(f"CPUs {cpus}, T={opts.T}, {opts.rounds} rounds, fallback budget "
              f"{opts.budget_us:g} us, load average {os.getloadavg()[0]:.2f}")
        with Hog(cpus[1]) as hog:
            for r in range(opts.rounds):
                for case, times in cases:
                    k = r % len(forms)
                    for name, form, pin, busy, futex in forms[k:] + forms[:k]:
                        hog.busy(busy)
                        ns, abandoned = case.run(mod, form, pinned if pin else free,
                                                 budget_ns, futex)
                        hog.busy(False)
                        times.setdefault(name, []).append((ns / case.T, abandoned))
                for name, pin, busy, futex in barrier_forms:
                    hog.busy(busy)
                    ns, _ = barrier_case.run(mod, "barrier", pinned if pin else free, 0,
                                             futex)
                    hog.busy(False)
                    barrier_times.setdefault(name, []).append(ns / barrier_case.T)
                print(f"round {r + 1}/{opts.rounds} done, load average "
                      f"{os.getloadavg()[0]:.2f}", file=sys.stderr)

    names = [f[0] for f in forms]
    for stat in ("median", "min"):
        f = statistics.median if stat == "median" else min
        print(f"\nwhole / form per step, from the {stat}s over the rounds")
        print("| dtype | G | H | whole us/step | " + " | ".join(names[1:]) + " |")
        print("|" + "---|" * (3 + len(names)))
        for case, times in cases:
            ns = {n: f([t for t, _ in times[n]]) for n in names}
            cells = [f"{ns['whole'] / ns[n]:.2f}" for n in names[1:]]
            print(f"| {case.dtype} | {case.G} | {case.H} | {ns['whole'] / 1e3:.2f} | "
                  + " | ".join(cells) + " |")
    print("\nthe barrier alone, ns per empty step (median, min over the rounds)")
    for name, *_ in barrier_forms:
        print(f"  {name:18s} {statistics.median(barrier_times[name]):9.0f} "
              f"{min(barrier_times[name]):9.0f}")
    print("\nthe fallback's calls that went to one thread (of the rounds), and the median "
          "step they went at")
    for name in names:
        if not name.startswith(("fallback", "steal")):
            continue
        for case, times in cases:
            steps = [a for _, a in times[name] if a]
            if steps:
                print(f"  {name:18s} {case.dtype} G={case.G} H={case.H}: {len(steps)}/"
                      f"{len(times[name])}, at step {statistics.median(steps):g}")
    if opts.out:
        rows = [dict(dtype=str(c.dtype), G=c.G, H=c.H, T=c.T, per_step_ns=t)
                for c, t in cases]
        Path(opts.out).write_text(json.dumps(dict(cases=rows, barrier=barrier_times),
                                             indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
