"""Where the batch split's fixed cost goes (fastbptt.cells.batch_split), measured in one
process at 2 BLAS threads, interleaved rounds; medians and minima in microseconds.

For each problem (forward+backward, float32, I = H):

    whole         the call on one thread (MIN_SPLIT_FLOPS infinite)
    split         the call split into min(2, B) blocks (MIN_SPLIT_FLOPS 0)
    split@REV     the same with cells/batch_split.py as it was at git revision REV
                  (--against REV; the module is pure Python, so both live in one process)
    serial        the split's blocks run one after the other in the caller's thread: the
                  split without threads (its second check of the arrays, its copies)

and, once, the parts of a hand-off with nothing to run:

    hand-off      _run_blocks of two empty jobs (one to a worker thread and back)
    executor      the same through a ThreadPoolExecutor (submit, Future.result)
    blas section  one_thread_enter + one_thread_exit around nothing

and, with --timeline, when each block of a split of the first problem starts and ends,
in microseconds from the start of its _run_blocks (medians over the calls; block 0 runs
in the caller's thread, block 1 in a worker; "back": the caller has every result), for
each module: whether the worker's block overlaps the caller's or waits for it.

    python bench/batch_split_cost.py --against b835ab5 --timeline
    python bench/batch_split_cost.py --shapes "10,2,16;100,32,256;35,20,650" --cells rnn
"""
import argparse
import statistics
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import perf_counter

import fastbptt
from fastbptt import bench
from fastbptt._kernels import blas
from fastbptt.bench.problems import make_problem, runner
from fastbptt.cells import batch_split, driver

MODULE = "src/fastbptt/cells/batch_split.py"


def load_at(rev):
    """cells/batch_split.py as it was at git revision rev, as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{rev}:{MODULE}"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"batch_split_at_{rev}")
    exec(compile(source, f"{rev}:{MODULE}", "exec"), module.__dict__)
    return module


def use(module):
    """Make the driver (and through its globals the fast path) split with module."""
    driver.batch_split = module
    driver.SplitCache = module.SplitCache


def serial_blocks(module):
    """module._run_blocks without threads: the jobs in order, in the caller's thread."""
    def run(jobs):
        token = blas.one_thread_enter()
        try:
            return [module._as_block(job) for job in jobs]
        finally:
            blas.one_thread_exit(token)
    return run


def timeline(module, run, calls):
    """Median start and end of each block, and the return, in us from the start of each
    _run_blocks of module over `calls` calls of run()."""
    plain, records = module._run_blocks, []

    def stamped(jobs):
        record = {"start": perf_counter()}

        def wrap(k, job):
            def stamped_job():
                record[f"block {k} starts"] = perf_counter()
                result = job()
                record[f"block {k} ends"] = perf_counter()
                return result
            return stamped_job

        results = plain([wrap(k, job) for k, job in enumerate(jobs)])
        record["back"] = perf_counter()
        records.append(record)
        return results

    module._run_blocks = stamped
    try:
        for _ in range(calls):
            run()
    finally:
        module._run_blocks = plain
    keys = [key for key in records[0] if key != "start"]
    return {key: statistics.median((r[key] - r["start"]) * 1e6 for r in records)
            for key in sorted(keys, key=lambda key: statistics.median(
                r[key] - r["start"] for r in records))}


def stats(timing):
    return f"{timing.median * 1e6:.1f} / {min(timing.times) * 1e6:.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="10,2,16", help="T,B,H;... with I = H")
    parser.add_argument("--cells", default="rnn")
    parser.add_argument("--against", default=None, metavar="REV")
    parser.add_argument("--repeat", type=int, default=201)
    parser.add_argument("--timeline", action="store_true")
    opts = parser.parse_args(argv)
    modules = {"split": batch_split}
    if opts.against:
        modules[f"split@{opts.against}"] = load_at(opts.against)
    saved = {m: m.MIN_SPLIT_FLOPS for m in modules.values()}
    plain_run_blocks = batch_split._run_blocks
    print("median / min us; " + ", ".join(f"{k}: {v.__name__}" for k, v in modules.items()))
    try:
        with fastbptt.threads(2):
            empty = [lambda: None, lambda: None]
            pool = ThreadPoolExecutor(max_workers=1)
            parts = bench.time_interleaved({
                "hand-off": lambda: batch_split._run_blocks(empty),
                "executor": lambda: pool.submit(lambda: None).result(),
                "blas section": lambda: blas.one_thread_exit(blas.one_thread_enter()),
            }, opts.repeat)
            pool.shutdown()
            for name, timing in parts.items():
                print(f"{name}: {stats(timing)}")
            print("| cell | T,B,I=H | " + " | ".join(["whole", *modules, "serial"]) + " |")
            print("|---|---|" + "---:|" * (len(modules) + 2))
            for cell in opts.cells.split(","):
                for shape in opts.shapes.split(";"):
                    T, B, H = map(int, shape.split(","))
                    run = runner(cell, "compiled", make_problem(cell, T, B, H, H, "float32"))

                    def timed(module, threshold, blocks=None, run=run):
                        def call():
                            use(module)
                            module.MIN_SPLIT_FLOPS = threshold
                            if blocks is not None:
                                module._run_blocks = blocks
                            try:
                                run()
                            finally:
                                module._run_blocks = plain_run_blocks \
                                    if module is batch_split else module._run_blocks
                        return call

                    calls = {"whole": timed(batch_split, float("inf"))}
                    calls.update({name: timed(m, 0) for name, m in modules.items()})
                    calls["serial"] = timed(batch_split, 0, serial_blocks(batch_split))
                    t = bench.time_interleaved(calls, opts.repeat)
                    print(f"| {cell} | {T},{B},{H} | "
                          + " | ".join(stats(t[name]) for name in calls) + " |", flush=True)
                    if opts.timeline:
                        for name, module in modules.items():
                            use(module)
                            module.MIN_SPLIT_FLOPS = 0
                            line = timeline(module, run, opts.repeat)
                            print(f"  timeline, {name}: " + ", ".join(
                                f"{key} {us:.1f}" for key, us in line.items()), flush=True)
    finally:
        use(batch_split)
        batch_split._run_blocks = plain_run_blocks
        for module, threshold in saved.items():
            module.MIN_SPLIT_FLOPS = threshold
    return 0


if __name__ == "__main__":
    sys.exit(main())
