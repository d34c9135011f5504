"""An MPI job (run by tests/test_distributed_mpi.py under mpiexec -n 2): the checks that
must give the same answer on every rank, so that no rank goes on alone into a collective.

1. check_replicas is False on every rank when one bit of one number differs on rank 1,
   True again once it is restored.
2. broadcast_params / GradientAverager / DistributedOptimizer on parameters whose layout
   differs on rank 1 (a shape, then a key) raise ValueError on EVERY rank, before any
   array changes.
Each rank prints one JSON line of what it saw.
"""
import json
import sys

import numpy as np

from fastbptt import SGD
from fastbptt.distributed import (
    DistributedOptimizer,
    GradientAverager,
    broadcast_params,
    check_replicas,
    init,
)

ctx = init(threads=1)
rank = ctx.rank
seen = {"rank": rank}

params = {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(3)}
seen["same"] = check_replicas(params)
if rank == 1:
    params["w"].view(np.uint64)[1, 2] ^= 1
seen["one_bit"] = check_replicas(params)
if rank == 1:
    params["w"].view(np.uint64)[1, 2] ^= 1
seen["restored"] = check_replicas(params)

shapes = {"w": np.zeros((2, 3) if rank == 0 else (3, 2)), "b": np.zeros(3)}
keys = {"w": np.zeros((2, 3)), ("b" if rank == 0 else "c"): np.zeros(3)}
for name, bad in (("shape", shapes), ("key", keys)):
    kept = {k: v.copy() for k, v in bad.items()}
    for what, call in (("broadcast", lambda: broadcast_params(bad)),
                       ("averager", lambda: GradientAverager(bad)),
                       ("optimizer", lambda: DistributedOptimizer(SGD(bad)))):
        try:
            call()
            seen[f"{name}-{what}"] = "no error"
        except ValueError as err:
            seen[f"{name}-{what}"] = "differ between ranks" in str(err)
    seen[f"{name}-unchanged"] = all(np.array_equal(bad[k], kept[k]) for k in bad)
sys.stdout.write(json.dumps(seen) + "\n")   # one write: the line reaches the launcher whole
sys.stdout.flush()
