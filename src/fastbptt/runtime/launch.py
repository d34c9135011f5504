"""Was this process started by an MPI launcher (mpiexec, mpirun, srun) as one of several?

Read from the environment the launchers set, so that `fastbptt demo` can tell a
multi-rank launch from a plain one without importing mpi4py (which a single-process user
need not have installed). Each launcher sets the world size and this process's rank:

    MPICH / Intel MPI (Hydra)   PMI_SIZE, PMI_RANK
    Open MPI                    OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK
    MVAPICH                     MV2_COMM_WORLD_SIZE, MV2_COMM_WORLD_RANK
    Slurm's srun                SLURM_STEP_NUM_TASKS, SLURM_PROCID (inside a job step)

Slurm's variables are read only inside a job step: a batch script itself also sees
SLURM_PROCID but is one process, and its step id is "batch" (or 4294967294).
"""
import os

_LAUNCHERS = (("PMI_SIZE", "PMI_RANK"),
              ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
              ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"))
_SLURM_NON_STEPS = {"batch", "extern", "interactive", "4294967294", "4294967295"}


def launched_world(environ=None):
    """(rank, size) of this process as its launcher set them; (0, 1) when no launcher
    (or one that started a single process) is found."""
    env = os.environ if environ is None else environ
    pairs = list(_LAUNCHERS)
    step = env.get("SLURM_STEP_ID")
    if step is not None and step not in _SLURM_NON_STEPS:
        pairs.append(("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"))
    for size_key, rank_key in pairs:
        try:
            size, rank = int(env[size_key]), int(env.get(rank_key, "0"))
        except (KeyError, ValueError):
            continue
        if size >= 1 and 0 <= rank < size:
            return rank, size
    return 0, 1
