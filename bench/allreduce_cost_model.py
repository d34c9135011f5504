"""On paper: what the gradient Allreduce of data-parallel training costs per step.

For n bytes per rank on p ranks, link bandwidth beta (bytes/s) and per-message latency
alpha (s), the textbook costs (Thakur, Rabenseifner & Gropp 2005; Patarasuk & Yuan 2009)
are

    ring (reduce-scatter + allgather)     2 (p - 1) alpha   + 2 (p - 1) / p * n / beta
    tree (recursive halving + doubling)   2 log2(p) alpha   + 2 (p - 1) / p * n / beta
    binary tree (reduce + broadcast)      2 log2(p) (alpha + n / beta)

(the reduction arithmetic, (p - 1) / p * n / memory bandwidth, is left out: a few % of
the wire time at 100 Gb/s). MPICH picks between the first two by message size; the
binary tree is shown for contrast. The step's compute is the model's forward+backward
FLOPs, 6 T B (I + H) G H per recurrent layer plus 6 T B H V for the softmax head, shared
by p ranks (B fixed: strong scaling) at R FLOP/s per rank; the table gives the allreduce
time and its share of (compute + allreduce) for the better of ring and tree.

    python bench/allreduce_cost_model.py
"""
import math

from fastbptt.cells.spec import get_spec


def lstm_model(V, H, L, cell="lstm"):
    """Parameters (floats) and per-sample-step FLOPs of V one-hot inputs -> L layers of H
    -> softmax over V, the demo's model."""
    G = get_spec(cell).gates
    params, flops = 0, 0
    for k in range(L):
        I = V if k == 0 else H
        params += G * H * (I + H) + 2 * G * H
        flops += 6 * (I + H) * G * H
    params += V * H + V
    flops += 6 * H * V
    return params, flops


MODELS = [
    # name, (V, H, L), T, global B, float bytes
    ("demo: LSTM 1 x 128, V = 54, T = 64, B = 32, float32", (54, 128, 1), 64, 32, 4),
    ("LSTM 2 x 1024, V = 10k one-hot, T = 35, B = 256, float32", (10_000, 1024, 2), 35, 256, 4),
]
NETWORKS = [("10 Gb/s, alpha 25 us", 10e9 / 8, 25e-6), ("100 Gb/s, alpha 3 us", 100e9 / 8, 3e-6)]
RANKS = [2, 4, 8, 16, 32, 64, 128, 256]
RATE = 50e9   # FLOP/s per rank: one core's fp32 LSTM forward+backward, about


def ring(n, p, alpha, beta):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n / beta


def tree(n, p, alpha, beta):
    return 2 * math.log2(p) * alpha + 2 * (p - 1) / p * n / beta


def binary_tree(n, p, alpha, beta):
    return 2 * math.log2(p) * (alpha + n / beta)


def main():
    print(f"compute at {RATE / 1e9:g} GFLOP/s per rank; times in ms; share = allreduce / "
          f"(compute + allreduce), the better of ring and tree\n")
    for name, (V, H, L), T, B, size in MODELS:
        params, per_sample = lstm_model(V, H, L)
        n = (params + 2) * size                      # + the loss and the count
        step_flops = per_sample * T * B
        print(f"{name}: {params:,} parameters, {n / 1e6:.2f} MB per allreduce, "
              f"{step_flops / 1e9:.1f} GFLOP per step")
        for net, beta, alpha in NETWORKS:
            print(f"\n{net}\n")
            print("| p | compute/rank | ring | tree | binary tree | share |")
            print("|---:|---:|---:|---:|---:|---:|")
            for p in RANKS:
                if p > B:
                    continue
                compute = step_flops / p / RATE
                r, t, b = (f(n, p, alpha, beta) for f in (ring, tree, binary_tree))
                best = min(r, t)
                print(f"| {p} | {1e3 * compute:.2f} | {1e3 * r:.2f} | {1e3 * t:.2f} | "
                      f"{1e3 * b:.2f} | {100 * best / (compute + best):.0f}% |")
        print()


if __name__ == "__main__":
    main()
