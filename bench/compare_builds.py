"""`fastbptt bench` of two builds, interleaved: is a change as fast as what it replaced?

    python bench/compare_builds.py --old /path/to/old/venv/bin/python --rounds 3

Each round runs `python -m fastbptt bench --json --no-reference --no-torch --no-roofline`
once per cell in the old build's interpreter and then in this one (or --new), so the two
builds see the machine within seconds of each other for every row, and a burst of load
from other processes lands on both. Any other bench options (--shapes, --dtypes,
--threads, --full) pass through. The table gives, per row, the median over rounds of each
build's median (`compiled_ms`) and new/old; the last line the range of the ratios.

    python bench/compare_builds.py --old /path/to/old/venv/bin/python --paired --pairs 21

--paired interleaves far finer, for rows whose ratio the whole-run interleave cannot
resolve (an old-vs-old run of it spread 0.92-1.16 on short rows): one worker process per
build (bench/_build_worker.py, public functions only) holds the row's problem, and the two
time blocks of about --block seconds in turn (old, new, new, old, ...), each after one
untimed call, so a block of one build has one of the other beside it within milliseconds.
Its ratio per row is the median over pairs of new/old block times. Its options: --shapes,
--dtypes, --threads as `fastbptt bench`'s (defaults the same), and --cells.

--workers N runs N worker processes per build, the pairs going round them: one process
of a build can run a row steadily faster or slower than another process of the same build
(an old-vs-old run held 0.86-1.27 with tight spreads at B = 1 rows; bench/RESULTS.md,
"Issue 13: paired blocks"), so a ratio from one process per build measures the two
processes as much as the two builds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CELLS = ("rnn", "lstm", "gru")   # one bench run per cell and build in each round
BENCH = ["-m", "fastbptt", "bench", "--json", "--no-reference", "--no-torch",
         "--no-roofline"]


def run_bench(python, cell, extra):
    done = subprocess.run([python] + BENCH + ["--cells", cell] + extra, capture_output=True,
                          text=True, cwd="/")
    if done.returncode != 0:
        sys.exit(f"compare_builds: {python} bench failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def key(row):
    return (row["cell"], ",".join(map(str, row["shape"])), row["dtype"], row["threads"])


class Worker:
    """One build's bench/_build_worker.py, spoken to in JSON lines."""

    def __init__(self, python):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build_worker.py")
        self.process = subprocess.Popen([python, script], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd="/")

    def ask(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit("compare_builds: a worker ended early (its stderr is above)")
        return json.loads(line)

    def block(self, number):
        self.ask(op="time", number=1)   # untimed: caches refilled after the other build
        return self.ask(op="time", number=number)["seconds"] / number

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def paired(opts):
    """The --paired table: per row, the median over pairs of new/old block times."""
    from fastbptt.bench import DEFAULT_DTYPES, DEFAULT_SHAPES, DEFAULT_THREADS, thread_counts
    shapes = DEFAULT_SHAPES
    if opts.shapes:   # 'T,B,H' (I = H) or 'T,B,I,H', separated by ';', as fastbptt bench's
        sizes = [[int(n) for n in shape.split(",")] for shape in opts.shapes.split(";")]
        shapes = [(*s, s[2]) if len(s) == 3 else tuple(s) for s in sizes]
    dtypes = opts.dtypes.split(",") if opts.dtypes else DEFAULT_DTYPES
    threads = thread_counts(opts.threads or DEFAULT_THREADS)
    workers = {"old": [Worker(opts.old) for _ in range(opts.workers)],
               "new": [Worker(opts.new) for _ in range(opts.workers)]}
    print(f"old vs new build, paired blocks of about {opts.block * 1e3:.0f} ms, "
          f"{opts.pairs} pairs per row, {opts.workers} worker process(es) per build; "
          f"{os.cpu_count()} CPUs")
    print("| cell | T,B,I,H | dtype | threads | old ms | new ms | new/old | pairs' spread |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    ratios = []
    for shape in shapes:
        for dtype in dtypes:
            for cell in opts.cells.split(","):
                for n in threads:
                    for worker in workers["old"] + workers["new"]:
                        worker.ask(op="setup", cell=cell, shape=list(shape), dtype=dtype,
                                   threads=n)
                    probe = workers["old"][0].block(1)
                    number = max(1, round(opts.block / max(probe, 1e-7)))
                    times = {"old": [], "new": []}
                    for pair in range(opts.pairs):
                        order = ("old", "new") if pair % 2 == 0 else ("new", "old")
                        for name in order:
                            worker = workers[name][pair % opts.workers]
                            times[name].append(worker.block(number))
                    per_pair = sorted(b / a for a, b in zip(times["old"], times["new"]))
                    ratio = statistics.median(per_pair)
                    ratios.append(ratio)
                    q = len(per_pair) // 4
                    old, new = (statistics.median(times[b]) * 1e3 for b in ("old", "new"))
                    print(f"| {cell} | {','.join(map(str, shape))} | {dtype} | {n} | "
                          f"{old:.4f} | {new:.4f} | {ratio:.3f} | "
                          f"{per_pair[q]:.3f}-{per_pair[-1 - q]:.3f} |", flush=True)
    for worker in workers["old"] + workers["new"]:
        worker.close()
    print(f"new/old from {min(ratios):.3f} to {max(ratios):.3f}, "
          f"median {statistics.median(ratios):.3f} (pairs' spread: the middle half)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the old build's python")
    parser.add_argument("--new", default=sys.executable, help="the new build's python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paired", action="store_true",
                        help="paired blocks in two long-lived workers (see above)")
    parser.add_argument("--pairs", type=int, default=21)
    parser.add_argument("--block", type=float, default=0.02, help="seconds per block")
    parser.add_argument("--workers", type=int, default=1, help="processes per build")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--shapes")
    parser.add_argument("--dtypes")
    parser.add_argument("--threads")
    opts, extra = parser.parse_known_args()
    if opts.paired:
        return paired(opts)
    for name in ("shapes", "dtypes", "threads"):
        if getattr(opts, name):
            extra += [f"--{name}", getattr(opts, name)]
    if opts.cells != ",".join(CELLS):
        sys.exit("compare_builds: --cells is for --paired; the whole-run mode runs every cell")
    builds = {"old": opts.old, "new": opts.new}
    times = {}   # key -> {"old": [ms per round], "new": [...]}
    header = None
    for _ in range(opts.rounds):
        for cell in CELLS:
            for name, python in builds.items():
                result = run_bench(python, cell, extra)
                header = header or result["header"]
                for row in result["rows"]:
                    times.setdefault(key(row), {"old": [], "new": []})[name].append(
                        row["compiled_ms"])
    blas = [b for b in header["blas"] if "compiled" in b["used_by"]]
    kernels = blas[0]["architecture"] if blas else "?"
    print(f"fastbptt bench, old vs new build interleaved, {opts.rounds} rounds; "
          f"{header['cpu']} ({header['cpu_count']} CPUs), {kernels} kernels, "
          f"OPENBLAS_CORETYPE {header['openblas_coretype']}")
    print("| cell | T,B,I,H | dtype | threads | old ms | new ms | new/old |")
    print("|---|---|---|---:|---:|---:|---:|")
    ratios = []
    for (cell, shape, dtype, threads), by_build in times.items():
        old, new = (statistics.median(by_build[b]) for b in ("old", "new"))
        ratios.append(new / old)
        print(f"| {cell} | {shape} | {dtype} | {threads} | {old:.3f} | {new:.3f} | "
              f"{new / old:.3f} |")
    print(f"new/old from {min(ratios):.3f} to {max(ratios):.3f}, "
          f"median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
