"""An MPI job (run by tests/test_distributed_mpi.py) in which rank 1 fails while the
others wait in a collective that rank 1 will never join.

    fail_fast.py raise      rank 1 raises after init(): init's hook must abort the job
    fail_fast.py kill       rank 1 SIGKILLs itself: the launcher must end the others
    fail_fast.py raise-noinit   the same exception without init(): shows the hang the
                                hook prevents (the test expects a timeout)
"""
import os
import signal
import sys

from mpi4py import MPI

mode = sys.argv[1]
if mode != "raise-noinit":
    from fastbptt.distributed import init
    init(threads=1)
comm = MPI.COMM_WORLD
comm.Barrier()
if comm.rank == 1:
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError("deliberate failure on rank 1")
comm.Barrier()      # rank 1 never gets here
print("unreachable: the barrier completed", flush=True)
