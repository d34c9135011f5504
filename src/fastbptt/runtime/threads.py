"""fastbptt.threads(n): the number of BLAS threads, and fastbptt's thread policy.

The policy (issue 14), safe by default:

- A compiled kernel call runs every matrix product on one BLAS thread: the per-step
  products are far too small to pay for a second thread, and any threaded product, the
  batched ones before and after the time loop included, waits for a descheduled BLAS
  thread whenever another process keeps a core busy: with a busy loop on the other core
  of a 2-core machine, calls ran 1.4-110x slower at 2 threads than at 1
  (bench/RESULTS.md, "Thread policy under load"). Each kernel sets scipy's OpenBLAS to
  one thread for its call when it runs more and back after (blas.pxd: one_thread_begin;
  a load and two stores, no lock), so its results do not depend on the count.
- Two or more cores are used by the batch split only (fastbptt.cells.batch_split): with
  n >= 2 threads, B >= 2 and enough work per call, the rows are cut into min(n, B)
  blocks, each run start to end in its own thread with one BLAS thread, synchronised once
  per call. Its results are bit-identical from run to run at a fixed count, equal to the
  one-thread results to rounding only.

The count itself is the BLAS's, as before: what it chose at load (OpenBLAS: all cores,
or OPENBLAS_NUM_THREADS), or what this context manager sets with threadpoolctl (numpy's
too, which the reference uses) for the duration of a block. numpy's BLAS and the NumPy
code around fastbptt calls are not affected by the policy. Where scipy's BLAS is not
OpenBLAS (or on Windows) its count cannot be read: the kernels then run as the BLAS
chooses and no call splits (fastbptt._kernels.blas.has_thread_control()).
The count is process-wide: do not change it in one thread while another is inside a
fastbptt call (a call restores the count it found when it started).
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

    In fastbptt's compiled calls, n >= 2 lets a large enough batch split across n
    threads (each with one BLAS thread); every matrix product of a kernel runs on one
    BLAS thread whatever n is (see the top of fastbptt.runtime.threads). numpy's BLAS
    runs with n threads too.

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
