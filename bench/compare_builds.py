"""`fastbptt bench` of two builds, interleaved: is a change as fast as what it replaced?

    python bench/compare_builds.py --old /path/to/old/venv/bin/python --rounds 3

Each round runs `python -m fastbptt bench --json --no-reference --no-torch --no-roofline`
once per cell in the old build's interpreter and then in this one (or --new), so the two
builds see the machine within seconds of each other for every row, and a burst of load
from other processes lands on both. Any other bench options (--shapes, --dtypes,
--threads, --full) pass through. The table gives, per row, the median over rounds of each
build's median (`compiled_ms`) and new/old; the last line the range of the ratios.
"""
import argparse
import json
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the old build's python")
    parser.add_argument("--new", default=sys.executable, help="the new build's python")
    parser.add_argument("--rounds", type=int, default=3)
    opts, extra = parser.parse_known_args()
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
