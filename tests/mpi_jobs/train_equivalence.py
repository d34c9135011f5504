"""An MPI job (run by tests/test_distributed_mpi.py under mpiexec -n 2 and -n 4).

For every cell (RNN, LSTM, GRU) x optimizer (SGD, Momentum, Adagrad, Adam), with gradient
clipping that does clip, and for two tasks:
  many-to-many: truncated BPTT(k1=3, k2=5) over B = 5 streams, stream-parallel
                (stream_slice: uneven, 3+2 on 2 ranks, 2+1+1+1 on 4);
  many-to-one:  11 samples in minibatches of 4 (minibatch_shards: the last one has 3,
                so on 4 ranks one rank has none),
every rank trains its shard with DistributedOptimizer, starting from DIFFERENT weights on
the non-root ranks (the broadcast must fix them), and asserts after every step that the
replicas are bit-identical. Rank 0 also trains one process on the combined batch with the
plain optimizer and asserts the parameters and the loss agree to rel 1e-12 (max norm per
array). Rank 0 prints one JSON line: the number of combinations, the largest relative
difference seen, and the CRC-32 of all final parameters (the same job twice must print
the same). Any failed assertion aborts the whole job (init's hook): a non-zero exit.
"""
import json
import zlib

import numpy as np

from fastbptt import (
    SGD,
    Adagrad,
    Adam,
    Momentum,
    TruncatedBPTT,
    clip_grad_norm,
    mean_squared_error,
    softmax_cross_entropy,
)
from fastbptt.distributed import (
    DistributedOptimizer,
    check_replicas,
    init,
    minibatch_shards,
    replica_checksum,
    stream_slice,
)
from fastbptt.nn import LAYERS as CELLS  # cell name -> layer class, from each CellSpec

ctx = init(threads=1)
OPTIMIZERS = {
    "sgd": lambda p: SGD(p, lr=0.5),
    "momentum": lambda p: Momentum(p, lr=0.2, momentum=0.9, nesterov=True),
    "adagrad": lambda p: Adagrad(p, lr=0.1),
    "adam": lambda p: Adam(p, lr=0.05),
}
I, H, V, LAYERS = 4, 6, 5, 2
CLIP = 0.3          # below the gradient norms of these problems: clipping is exercised
REL = 1e-12


def make_model(cell, seed):
    layer = CELLS[cell](I, H, num_layers=LAYERS, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    params = dict(layer.params)
    params["head.weight"] = rng.normal(0, 0.5, (V, H))
    params["head.bias"] = rng.normal(0, 0.1, V)
    return layer, params


def many_to_many_steps(layer, params, streams):
    """(grads, loss, count) for each window of two passes of TBPTT over `streams`."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(10, 5, I))
    targets = rng.integers(0, V, size=(10, 5))
    x, targets = x[:, streams], targets[:, streams]
    tb = TruncatedBPTT(layer, 3, 5)

    def loss_fn(output, start, stop):
        loss, g = softmax_cross_entropy(output, params["head.weight"], params["head.bias"],
                                        targets[start:stop])
        return loss, g.dh, {"head.weight": g.dW, "head.bias": g.db}

    for _ in range(2):
        tb.reset()
        for w in tb.run(x, loss_fn):
            yield w.grads, w.loss, (w.stop - w.loss_start) * x.shape[1]


def many_to_one_steps(layer, params, shards):
    """(grads, loss, count) for each minibatch (index array) in shards; None grads for an
    empty shard."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 11, I))
    y = rng.normal(size=(11, V))
    for idx in shards:
        if len(idx) == 0:
            yield None, 0.0, 0
            continue
        output, _ = layer.forward(x[:, idx])
        loss, g = mean_squared_error(output[-1], params["head.weight"],
                                     params["head.bias"], y[idx])
        d_output = np.zeros_like(output)
        d_output[-1] = g.dh
        _, grads = layer.backward(d_output)
        grads = dict(grads, **{"head.weight": g.dW, "head.bias": g.db})
        yield grads, loss, len(idx) * V          # the mean runs over samples x outputs


def rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def main():
    rank, size = ctx.rank, ctx.size
    worst, crc, combos = 0.0, 0, 0
    m2o_order = np.random.default_rng(9).permutation(11)
    for task in ("many-to-many", "many-to-one"):
        for cell in CELLS:
            for name, make_opt in OPTIMIZERS.items():
                if task == "many-to-many":
                    mine = stream_slice(5, rank, size)
                    everything = slice(None)
                    steps = many_to_many_steps
                else:
                    epochs = [minibatch_shards(11, 4, rank, size, order=m2o_order)] * 2
                    mine = [s for e in epochs for s in e]
                    everything = [s for _ in range(2) for s in
                                  minibatch_shards(11, 4, 0, 1, order=m2o_order)]
                    steps = many_to_one_steps
                # non-root ranks start elsewhere: DistributedOptimizer broadcasts rank 0's
                layer, params = make_model(cell, seed=0 if rank == 0 else 100 + rank)
                opt = DistributedOptimizer(make_opt(params), clip=CLIP)
                results = []
                for grads, loss, count in steps(layer, params, mine):
                    results.append(opt.step(grads, loss=loss, count=count))
                    assert check_replicas(params), f"replicas differ: {task} {cell} {name}"
                crc = zlib.crc32(replica_checksum(params).to_bytes(4, "little"), crc)
                combos += 1
                if rank != 0:
                    continue
                ref_layer, ref_params = make_model(cell, seed=0)
                ref_opt = make_opt(ref_params)
                clipped = 0
                for (grads, loss, _count), result in zip(
                        steps(ref_layer, ref_params, everything), results, strict=True):
                    norm = clip_grad_norm(grads, CLIP)
                    clipped += norm > CLIP
                    ref_opt.step(grads)
                    assert abs(result.loss - loss) <= REL * abs(loss), (task, cell, name)
                    assert abs(result.grad_norm - norm) <= REL * norm, (task, cell, name)
                assert clipped, f"clipping never happened: {task} {cell} {name}"
                for key, ref in ref_params.items():
                    d = rel_diff(params[key], ref)
                    worst = max(worst, d)
                    assert d <= REL, f"{task} {cell} {name} {key}: rel diff {d:.3g}"
    if rank == 0:
        print(json.dumps({"size": size, "combinations": combos, "max_rel_diff": worst,
                          "checksum": crc}), flush=True)


main()
