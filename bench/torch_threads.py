"""torch's forward+backward at 1 and 2 intra-op threads, interleaved in one process
(torch.set_num_threads before each call), to tell a slow two-thread torch row of
`fastbptt bench --threads 2` from a benchmark that sets torch's threads wrongly: the
threads' counts and CPU affinities are printed beside the times. OpenMP's wait policy is
the environment's (run it with OMP_WAIT_POLICY=PASSIVE or ACTIVE to compare).

    python bench/torch_threads.py --cell rnn --shape 100,32,256
"""
import argparse
import glob
import os

from fastbptt import bench


def thread_affinities():
    """{CPUs allowed: how many of this process's threads have them} (Linux; {} elsewhere)."""
    seen = {}
    for status in glob.glob("/proc/self/task/*/status"):
        with open(status) as f:
            for line in f:
                if line.startswith("Cpus_allowed_list"):
                    cpus = line.split()[1]
                    seen[cpus] = seen.get(cpus, 0) + 1
    return seen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="rnn")
    parser.add_argument("--shape", default="100,32,256", help="T,B,H with I = H")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=11)
    opts = parser.parse_args(argv)
    T, B, H = map(int, opts.shape.split(","))
    problem = bench.make_problem(opts.cell, T, B, H, H, opts.dtype)
    try:
        import torch
    except ImportError as exc:
        print(f"torch is not importable ({exc})")
        return 1
    run = bench.peer("torch").prepare(opts.cell, problem, threads=1).run

    def at(n):
        def call():
            torch.set_num_threads(n)
            return run()
        return call

    timings = bench.time_interleaved({1: at(1), 2: at(2)}, opts.repeat)
    print(f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"interop threads {torch.get_num_interop_threads()}, "
          f"thread affinities {thread_affinities()}")
    for n, timing in timings.items():
        print(f"{opts.cell} {T},{B},{H} {opts.dtype} torch at {n} thread(s): median "
              f"{timing.median * 1e3:.2f} ms, min {min(timing.times) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
