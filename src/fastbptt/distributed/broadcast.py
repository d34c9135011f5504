"""Start every rank from rank 0's arrays: broadcast_params and broadcast_optimizer_state.

Both first check, collectively, that every rank has the same layout (the same keys in the
same order, shapes and dtypes): a rank with a different model would otherwise receive
bytes into the wrong arrays, or wait forever for a message of another size. A mismatch is
a ValueError on every rank, before any array changes.
"""
import numpy as np
from mpi4py import MPI

from fastbptt.distributed.runtime import check_comm

# the optimizers' own check of a parameter dict (private: its module moves in issue 13)
from fastbptt.training.optim import _check_float_arrays as check_array_dict


def check_root(root, comm):
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise TypeError(f"root must be an int rank, got {type(root).__name__}")
    if not 0 <= root < comm.size:
        raise ValueError(f"root must be a rank in [0, {comm.size}), got {root}")
    return int(root)


def layout(arrays):
    """The part of a dict of arrays that every rank must agree on."""
    return [(str(k), tuple(v.shape), v.dtype.str) for k, v in arrays.items()]


def check_same_layout(what, signature, comm, root=0):
    """Collective: ValueError on every rank unless every rank's signature equals root's."""
    reference = comm.bcast(signature, root=root)
    differs = signature != reference
    n_bad = comm.allreduce(int(differs), op=MPI.SUM)
    if n_bad:
        detail = ""
        if differs:
            detail = f"; this rank ({comm.rank}) has {signature!r}, rank {root} {reference!r}"
        raise ValueError(f"{what} differ between ranks: {n_bad} of {comm.size} ranks do not "
                         f"match rank {root} (keys in order, shapes, dtypes){detail}")


def broadcast_params(params, root=0, comm=None):
    """Overwrite every rank's arrays in params {name: ndarray} with root's, in place
    (one MPI Bcast per array, no pickling). Returns params."""
    comm = check_comm(comm)
    root = check_root(root, comm)
    check_array_dict("params", params, writable=True)
    check_same_layout("params", layout(params), comm, root)
    for value in params.values():
        _bcast_in_place(value, root, comm)
    return params


def broadcast_optimizer_state(optimizer, root=0, comm=None):
    """Give every rank root's optimizer state (its state arrays, step count and
    hyperparameters) through the optimizer's public state_dict / load_state_dict.
    Returns the optimizer. The parameters themselves: broadcast_params."""
    comm = check_comm(comm)
    root = check_root(root, comm)
    if not (callable(getattr(optimizer, "state_dict", None))
            and callable(getattr(optimizer, "load_state_dict", None))):
        raise TypeError(f"optimizer must have state_dict() and load_state_dict() (a "
                        f"fastbptt optimizer), got {type(optimizer).__name__}")
    state = optimizer.state_dict()
    arrays = {k: np.ascontiguousarray(v) for k, v in state.items()
              if isinstance(v, np.ndarray) and v.ndim > 0}
    scalars = {k: v for k, v in state.items() if k not in arrays}
    check_same_layout("optimizer states", [type(optimizer).__name__] + layout(arrays),
                      comm, root)
    scalars = comm.bcast(scalars, root=root)   # a few numbers: pickling is fine here
    for value in arrays.values():
        comm.Bcast(value, root=root)
    optimizer.load_state_dict({**scalars, **arrays})
    return optimizer


def _bcast_in_place(array, root, comm):
    if array.flags.c_contiguous:
        comm.Bcast(array, root=root)
    else:   # a strided view: receive into a contiguous copy, then write it back
        buffer = np.ascontiguousarray(array)
        comm.Bcast(buffer, root=root)
        np.copyto(array, buffer)
