"""fastbptt.threads(n): the number of BLAS threads the kernels' matrix products use.

The compiled kernels do their matrix products in the BLAS of scipy.linalg.cython_blas
and have no threads of their own, so their thread count is that BLAS's. This context
manager sets it (and numpy's, which the reference uses) with threadpoolctl for the
duration of a block, and restores the previous counts on exit.

The default is what the BLAS chose at load (OpenBLAS: all cores, or OPENBLAS_NUM_THREADS).
bench/RESULTS.md measures 1 against all cores (bench/thread_split.py): on a quiet
2-core machine all cores ran every B > 1 shape 1.5-2x faster; at B = 1 the per-step
GEMVs gained nothing from a second thread and only the batched products did. On a busy
machine one thread was faster everywhere.
"""
import os
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


def _check_threads(n):
    if n is None or n == "all":
        return os.cpu_count() or 1
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"threads must be a positive int, 'all' or None, got {n!r}")
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    return n


@contextmanager
def threads(n):
    """Run a block with n BLAS threads (threadpoolctl).

    The kernels have no threads of their own; their matrix products run in scipy's BLAS
    with this thread count.

    Parameters
    ----------
    n : int, "all" or None
        A positive int, or "all" / None for every logical CPU.

    Raises
    ------
    TypeError, ValueError
        A non-int, or n < 1; checked before any limit is set.

    Examples
    --------
    >>> import fastbptt
    >>> with fastbptt.threads(1) as count:
    ...     print(count)
    1
    """
    count = _check_threads(n)
    with threadpool_limits(limits=count, user_api="blas"):
        yield count
