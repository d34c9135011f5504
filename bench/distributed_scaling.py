"""Data-parallel scaling of a training step: 1 rank x 1 thread, 1 rank x 2 threads and
2 ranks x 1 thread (mpiexec), each rank pinned to its own core(s).

The step is the demo's: a one-layer LSTM over one-hot characters (V inputs), a fused
softmax cross-entropy head, backward, then the gradient averaged over the ranks in one
Allreduce (fastbptt.distributed.GradientAverager), clipped, and an Adam step; B global
streams of seq_len steps, B / p on each of p ranks. Per configuration a job of `--steps`
timed steps (after warm-ups) reports rank 0's median step time; the configurations run
in turn, `--rounds` times (interleaved, so a burst of load from other processes falls on
all of them), and the table gives the median over rounds: ms per step, global chars/s,
speed-up over 1 rank x 1 thread, and the allreduce's time inside the step (including any
wait for the slower rank) and alone (after a barrier: the transfer), with its share.

    python bench/distributed_scaling.py --sizes 128,8 512,128 --rounds 5 --steps 20

(`--worker` is how the script runs itself under mpiexec; not for direct use.)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CONFIGS = [("1 rank x 1 thread", 1, 1), ("1 rank x 2 threads", 1, 2),
           ("2 ranks x 1 thread", 2, 1)]


def pin(rank, threads):
    """Pin this process to cores [rank * threads, (rank + 1) * threads) before any BLAS
    thread exists (threads inherit the mask), and return them."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = {cpus[(rank * threads + i) % len(cpus)] for i in range(threads)}
    os.sched_setaffinity(0, mine)
    return sorted(mine)


def worker(args):
    from fastbptt.runtime.launch import launched_world
    rank, size = launched_world()
    cores = pin(rank, args.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import time

    import numpy as np

    from fastbptt import LSTM, Adam, bench, clip_grad_norm, softmax_cross_entropy, threads

    if size > 1:
        from fastbptt.distributed import GradientAverager, broadcast_params, init
        ctx = init(threads=args.threads)
        comm = ctx.comm
    H, B, T, V = args.hidden, args.batch, args.seq_len, args.vocab
    if B % size:
        raise SystemExit(f"batch {B} not divisible by {size} ranks")
    b = B // size
    rng = np.random.default_rng(0)
    layer = LSTM(V, H, dtype=np.float32, seed=0)
    params = dict(layer.params)
    params["head.weight"] = rng.uniform(-0.1, 0.1, (V, H)).astype(np.float32)
    params["head.bias"] = np.zeros(V, np.float32)
    opt = Adam(params, lr=1e-3)
    if size > 1:
        broadcast_params(params, comm=comm)
        averager = GradientAverager(params, comm=comm)
    chars = rng.integers(0, V, size=(T + 1, B))[:, rank * b:(rank + 1) * b]
    x = np.zeros((T, b, V), np.float32)
    np.put_along_axis(x, chars[:-1, :, None], 1, axis=-1)
    targets = chars[1:]

    def step():
        output, _ = layer.forward(x)
        loss, g = softmax_cross_entropy(output, params["head.weight"], params["head.bias"],
                                        targets)
        _, grads = layer.backward(g.dh)
        grads.update({"head.weight": g.dW, "head.bias": g.db})
        t0 = time.perf_counter()
        if size > 1:
            grads = averager.average(grads, loss=loss, count=T * b).grads
        t1 = time.perf_counter()
        clip_grad_norm(grads, 5.0)
        opt.step(grads)
        return t1 - t0

    reduce_times = []
    with threads(args.threads):
        for _ in range(args.warmup):
            step()
        # the same number of calls on every rank (time_call: one warm-up + repeat), so the
        # collectives inside line up; rank 0's time includes any wait for the other rank
        timing = bench.time_call(lambda: reduce_times.append(step()), repeat=args.steps)
        alone = None
        if size > 1:
            zeros = {k: np.zeros_like(p) for k, p in params.items()}

            def allreduce_alone():
                comm.Barrier()      # both ranks arrive together: the transfer, no wait
                t0 = time.perf_counter()
                averager.average(zeros, loss=0.0, count=1)
                return time.perf_counter() - t0

            alone = statistics.median(allreduce_alone() for _ in range(args.steps))
    if rank == 0:
        print(json.dumps({"step": timing.median,
                          "allreduce_in_step": statistics.median(reduce_times[1:]),
                          "allreduce_alone": alone or 0.0,
                          "bytes": averager.nbytes if size > 1 else 0, "cores": cores}),
              flush=True)


def find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    import importlib.metadata
    for f in importlib.metadata.distribution("mpich").files or []:
        if f.name == "mpiexec":
            return str(Path(f.locate()).resolve())
    raise SystemExit("no mpiexec found: pip install mpich")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["128,8", "512,128"],
                        help="H,B pairs: hidden units and global streams")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    mpiexec = find_mpiexec()
    print(f"LSTM, V={args.vocab} one-hot inputs, seq_len={args.seq_len}, float32, Adam, "
          f"clip; {args.rounds} interleaved rounds of {args.steps} steps; medians")
    print("| H | global B | configuration | ms/step | chars/s | speed-up | allreduce in "
          "step ms (share) | allreduce alone ms | bytes |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        H, B = (int(v) for v in size.split(","))
        results = {name: [] for name, _, _ in CONFIGS}
        for _ in range(args.rounds):
            for name, ranks, threads in CONFIGS:
                cmd = [mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker",
                       "--hidden", str(H), "--batch", str(B), "--threads", str(threads),
                       "--seq-len", str(args.seq_len), "--vocab", str(args.vocab),
                       "--steps", str(args.steps), "--warmup", str(args.warmup)]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
                if proc.returncode:
                    raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
                results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        base = statistics.median(r["step"] for r in results[CONFIGS[0][0]])
        for name, _, _ in CONFIGS:
            rs = results[name]
            step = statistics.median(r["step"] for r in rs)
            in_step = statistics.median(r["allreduce_in_step"] for r in rs)
            alone = statistics.median(r["allreduce_alone"] for r in rs)
            print(f"| {H} | {B} | {name} | {1e3 * step:.2f} | "
                  f"{args.seq_len * B / step:,.0f} | {base / step:.2f}x | "
                  f"{1e3 * in_step:.3f} ({100 * in_step / step:.1f}%) | {1e3 * alone:.3f} | "
                  f"{rs[0]['bytes']:,} |", flush=True)


if __name__ == "__main__":
    main()
