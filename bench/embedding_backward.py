"""The embedding's weight gradient: the compiled scatter-add (fastbptt.embedding_backward)
against np.add.at, the obvious NumPy (and the reference twin's) way, and against the
one-hot product of fastbptt.compat.cs231n.word_embedding_backward.

Two forms, each timed interleaved (fastbptt.bench.time_interleaved), one thread, medians:
  new dW:    dW = zeros (V, D), then the scatter-add (what a training step needs)
  zero alone: filling an existing (V, D) array with zeros, the floor of a new dense dW
  add into:  the scatter-add into an existing (V, D) array (np.add.at's own semantics;
             embedding_backward(..., add_to=dW), the tied-weights form)

    python bench/embedding_backward.py --vocab 10000 --dim 256 --indices 20,35 --dtype float32
"""
import argparse

import numpy as np
from threadpoolctl import threadpool_limits

import fastbptt
from fastbptt.bench import time_interleaved
from fastbptt.compat import cs231n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=10000, help="V, rows of the weight")
    parser.add_argument("--dim", type=int, default=256, help="D, the embedding size")
    parser.add_argument("--indices", default="20,35", help="shape of the index array")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed rounds (default: adaptive)")
    args = parser.parse_args()
    V, D, dtype = args.vocab, args.dim, np.dtype(args.dtype)
    shape = tuple(int(s) for s in args.indices.split(","))
    rng = np.random.default_rng(0)
    indices = rng.integers(0, V, shape)
    weight = rng.standard_normal((V, D)).astype(dtype)
    d_out = rng.standard_normal(shape + (D,)).astype(dtype)
    _, cache = fastbptt.embedding_forward(indices, weight)
    _, cs_cache = cs231n.word_embedding_forward(indices.reshape(1, -1), weight)
    flat, rows = indices.reshape(-1), d_out.reshape(-1, D)
    acc = np.zeros((V, D), dtype)
    acc_zero = np.zeros((V, D), dtype)   # the floor of "new dW": writing V x D zeros

    def add_at_new():
        dW = np.zeros((V, D), dtype)
        np.add.at(dW, flat, rows)
        return dW

    runs = {
        "compiled, new dW": lambda: fastbptt.embedding_backward(d_out, cache),
        "np.add.at, new dW": add_at_new,
        "cs231n one-hot, new dW": lambda: cs231n.word_embedding_backward(
            d_out.reshape(1, -1, D), cs_cache),
        "zero (V, D) alone": lambda: acc_zero.fill(0),
        "compiled, add into": lambda: fastbptt.embedding_backward(d_out, cache, add_to=acc),
        "np.add.at, add into": lambda: np.add.at(acc, flat, rows),
    }
    np.testing.assert_allclose(runs["compiled, new dW"](), add_at_new(), rtol=1e-5, atol=1e-5)
    with threadpool_limits(limits=1):
        times = time_interleaved(runs, repeat=args.repeat)
    print(f"embedding backward: V={V} D={D} indices {shape} {dtype.name}, one thread, "
          f"medians of {len(times['compiled, new dW'].times)} interleaved rounds")
    for name, t in times.items():
        print(f"  {name:24s} {t.median * 1e3:9.3f} ms")
    for form in ("new dW", "add into"):
        ratio = times[f"np.add.at, {form}"].median / times[f"compiled, {form}"].median
        print(f"  np.add.at / compiled, {form}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
