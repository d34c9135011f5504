"""init(): the communicator, this process's place in it, fail-fast, BLAS threads per rank.

Fail fast. Without help, an uncaught exception on one rank ends that rank's Python while
the others wait forever in their next collective (MPI gives no timeout): the job hangs
until a human or the batch system's wall clock kills it. init() installs a sys.excepthook
that prints the traceback and then calls MPI_Abort on the communicator (abort()), which
ends every rank of the job with a non-zero exit. (A rank killed by a signal is the launcher's to
notice: mpiexec and srun then end the others.) sys.exit(n) is not an exception that reaches
the hook: to MPI it is a normal exit, and a rank leaving with sys.exit(1) while the others
wait in a collective leaves them waiting (tried with MPICH's Hydra); to stop the whole job
from one rank, call abort(comm, n).

BLAS threads. Every rank runs its own BLAS; with the BLAS default (one thread per core)
p ranks on a node would run p x cores threads on its cores and slow each other down. Unless
the user chose (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS or BLIS_NUM_THREADS
set, or threads= given), each rank gets cores_per_node // ranks_per_node threads (at least
one, and no more than the CPUs this rank is pinned to), ranks_per_node counted with
MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
"""
import os
import sys
import time
from dataclasses import dataclass

from mpi4py import MPI
from threadpoolctl import threadpool_limits

import fastbptt  # noqa: F401  (loads the BLAS the kernels use, so the limit reaches it)

# How long a failing rank waits, after writing its traceback, before MPI_Abort.
_DRAIN_SECONDS = 0.2

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS")


@dataclass(frozen=True)
class Context:
    """What init() returns: comm (an mpi4py Intracomm), rank and size in it, local_rank
    and local_size among the ranks on this node, and blas_threads (the BLAS threads set
    for this rank, or None where init left them as the user set them)."""
    comm: object
    rank: int
    size: int
    local_rank: int
    local_size: int
    blas_threads: object

    @property
    def is_root(self):
        """True on rank 0, the rank that prints, samples and writes checkpoints."""
        return self.rank == 0


_installed_hooks = set()   # ids of the communicators whose abort hook is installed


def check_comm(comm):
    """comm, or MPI.COMM_WORLD for None; TypeError for anything but an intracommunicator."""
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
        raise TypeError(f"comm must be an mpi4py intracommunicator (e.g. MPI.COMM_WORLD), "
                        f"got {type(comm).__name__}")
    return comm


def init(comm=None, abort_on_error=True, threads="auto"):
    """Set up this rank for data-parallel training and return its Context.

    comm: the communicator to train over (default MPI.COMM_WORLD). abort_on_error: install
    the hook that turns an uncaught exception on any rank into MPI_Abort of the job.
    threads: "auto" (the rule in the module docstring), None (leave the BLAS alone) or a
    positive int (that many BLAS threads on every rank).
    """
    comm = check_comm(comm)
    if not (threads in ("auto", None) or (isinstance(threads, int)
                                          and not isinstance(threads, bool) and threads >= 1)):
        raise ValueError(f"threads must be 'auto', None or a positive int, got {threads!r}")
    if not isinstance(abort_on_error, bool):
        raise TypeError(f"abort_on_error must be a bool, got {abort_on_error!r}")
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    local_rank, local_size = node.rank, node.size
    node.Free()
    if abort_on_error:
        _install_abort_hook(comm)
    blas_threads = _set_blas_threads(threads, local_size)
    return Context(comm, comm.rank, comm.size, local_rank, local_size, blas_threads)


def _install_abort_hook(comm):
    if id(comm) in _installed_hooks:
        return
    _installed_hooks.add(id(comm))
    previous = sys.excepthook
    rank = comm.rank

    def abort_on_uncaught(exc_type, exc, tb):
        try:
            previous(exc_type, exc, tb)
            sys.stderr.write(f"fastbptt.distributed: uncaught {exc_type.__name__} on rank "
                             f"{rank}; aborting all {comm.size} ranks\n")
            drain_stderr()
        finally:
            abort(comm)

    sys.excepthook = abort_on_uncaught


def drain_stderr():
    """Flush stderr and give the launcher a moment to forward it before an abort. The
    launcher forwards a rank's stderr through a pipe and, once asked to abort, may tear
    the job down before it has read what is in that pipe (with MPICH's hydra a failing
    rank's last lines were now and then missing from the job's stderr, most often with
    the machine busy); a failing job can spare the wait."""
    sys.stderr.flush()
    time.sleep(_DRAIN_SECONDS)


def abort(comm, code=1):
    """End every rank of comm's job with exit status `code`, now. MPI_Abort only asks the
    launcher to kill the job and may return (MPICH's does, at once): this process then
    leaves at once too, running no more Python (no atexit handler, no half-written
    file), while the launcher ends the others."""
    try:
        comm.Abort(code)
    finally:
        os._exit(code)


def default_blas_threads(local_size, cpu_count=None, affinity=None):
    """cores_per_node // ranks_per_node, at least 1, at most the CPUs this rank may use."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    n = max(1, cores // max(1, local_size))
    if affinity is None and hasattr(os, "sched_getaffinity"):
        affinity = len(os.sched_getaffinity(0))
    return min(n, affinity) if affinity else n


def _set_blas_threads(threads, local_size):
    if threads is None:
        return None
    if threads == "auto":
        if any(os.environ.get(name) for name in THREAD_VARIABLES):
            return None
        threads = default_blas_threads(local_size)
    # Not used as a context manager: the limit holds for the rest of the process.
    threadpool_limits(limits=threads, user_api="blas")
    return threads
