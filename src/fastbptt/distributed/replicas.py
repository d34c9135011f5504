"""check_replicas: do all ranks hold bit-identical parameters?

Each rank folds the bytes of its arrays (in the dict's order, with their shapes and
dtypes) into a CRC-32, a stable checksum of the bits (Python's hash() is salted per
process, so it cannot be compared across ranks), and one Allreduce of [crc, -crc] with
MIN tells every rank whether the minimum equals the maximum. It costs one pass over the
parameters at memory speed and a few bytes on the wire; different bits are caught except
for a CRC collision (probability about 2**-32 per differing check).
"""
import zlib

import numpy as np
from mpi4py import MPI

from fastbptt.distributed.broadcast import check_array_dict
from fastbptt.distributed.runtime import check_comm


def replica_checksum(params):
    """The CRC-32 of params' keys, shapes, dtypes and bytes, as an int."""
    check_array_dict("params", params, writable=False)
    crc = 0
    for key, value in params.items():
        crc = zlib.crc32(f"{key}{value.shape}{value.dtype.str}".encode(), crc)
        crc = zlib.crc32(memoryview(np.ascontiguousarray(value)).cast("B"), crc)
    return crc


def check_replicas(params, comm=None):
    """True on every rank when every rank's params are bit-identical, else False on every
    rank (collective)."""
    comm = check_comm(comm)
    crc = replica_checksum(params)
    extremes = np.array([crc, -crc], np.int64)
    comm.Allreduce(MPI.IN_PLACE, extremes, op=MPI.MIN)
    return bool(extremes[0] == -extremes[1])
