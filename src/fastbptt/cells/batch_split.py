"""Two cores for one call: the batch split of the compiled forward and backward.

The sequences of a batch are independent until the weight gradients, which are sums over
them. So with n >= 2 BLAS threads and B >= 2 the driver (cells/driver.py, run_forward
and run_backward) hands a large enough problem here: its B rows are cut into
min(n, B) contiguous blocks of rows (sizes differing by at most one), each block runs
the whole plain forward (or backward) of its rows in its own Python thread, and the
kernels run with the GIL released, so the blocks' time loops run on separate cores.
During the split scipy's BLAS is on one thread (fastbptt._kernels.blas: a one-thread
section, as in every kernel call): each block's products run in the thread that calls
them. Afterwards:

    h (T, B, H) = the blocks' h side by side along B; the final states likewise;
    dx, dh0 (and dc0): the blocks' rows side by side;
    dW_ih, dW_hh, db_ih, db_hh = sum over blocks k = 0, 1, ... of block k's, in that order.

The fixed block order makes results bit-identical from run to run at a fixed thread
count. They are not bit-identical to the one-thread path: a block's products run over
its rows only (OpenBLAS's result for a row can depend on how it blocks the rows; a block
of at most spec.GEMV_ROWS rows takes the per-row GEMV step form), and the weight
gradients are summed per block, then across blocks; they agree to rounding
(tests/test_batch_split.py).

When it pays: the split costs a hand-off to a worker thread and back, a second pass
through the driver's Python, and copies of x, dh and the outputs (time-major rows of a
block are strided); it is taken only when one forward holds at least MIN_SPLIT_FLOPS of
matrix products (bench/RESULTS.md, "Batch split"). Checkpointed calls split each
segment's forward and backward the same way.

The worker threads live in a pool kept for the process (restarted after a fork); like
every thread they keep their own recycled buffers (cells/workspace.py), which
release_workspace() in the caller's thread does not drop.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastbptt._kernels import blas
from fastbptt.cells import workspace
from fastbptt.cells.cache import CellCache

# The least forward FLOPs, 2*T*B*(I+H)*G*H, for which a split is taken: a split costs a
# fixed hand-off and copies, so it lost at 1.0e8 (an LSTM at (50,8,128)) and won from
# 4e8 on every cell (bench/RESULTS.md, "Batch split: the threshold on a quiet machine").
MIN_SPLIT_FLOPS = 200_000_000

_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool():
    """After a fork the child has none of the parent's threads: start a new pool (and a
    new lock: the parent's may have been held by a thread the child does not have)."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers(n):
    """The pool of at least n worker threads (the caller's thread runs the first block)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fastbptt-split")
            _pool_size = n
            if old is not None:
                old.shutdown(wait=False)
        return _pool


_state = threading.local()   # .inside: this thread runs a block of a split


def blocks(args):
    """The row blocks [(lo, hi), ...] to split a validated, non-empty problem into, or None
    to run it whole: fewer than 2 BLAS threads in the caller's count (or no control of
    it), B < 2, less than MIN_SPLIT_FLOPS of work, or a block of a split (no nesting).

    The count is blas.callers_threads(), not the BLAS's count of the moment: that is 1
    while any kernel call is open in any thread, so the choice would depend on what other
    threads are doing, and so would the bits of the result."""
    B = args.B
    if B < 2:
        return None
    if 2 * args.T * B * (args.I + args.H) * args.G * args.H < MIN_SPLIT_FLOPS:
        return None
    threads = blas.callers_threads()   # 0 when the count cannot be read: never split
    if threads < 2 or getattr(_state, "inside", False):
        return None
    n = min(threads, B)
    bounds = [B * k // n for k in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class SplitCache(CellCache):
    """What backward needs from a split forward: the whole problem's arguments, the row
    blocks, and each block's own cache (a plain compiled cache of its rows)."""
    __slots__ = ("args", "blocks", "caches")
    backend = "compiled"

    def __init__(self, args, blocks, caches):
        self.args = args        # validated CellArgs of all B rows
        self.blocks = blocks    # [(lo, hi), ...]
        self.caches = caches    # per block, the cache of its forward

    @property
    def spec(self):
        return self.args.spec

    def final_states(self):
        parts = [cache.final_states() for cache in self.caches]
        return tuple(np.concatenate(states) for states in zip(*parts))


def _rows(args, array, lo, hi):
    """Rows lo..hi-1 of a (T, B, .) array, (B, T, .) batch-first, C-contiguous: a copy
    time-major (its rows of one step are strided), in the calling thread's recycled
    buffers (a block's thread makes its own); a view batch-first."""
    if args.batch_first:
        return array[lo:hi]
    return workspace.copy(array[:, lo:hi])


def _block_args(args, lo, hi):
    """The validated arguments of rows lo..hi-1: nothing is checked again."""
    return args._replace(x=_rows(args, args.x, lo, hi), h0=args.h0[lo:hi],
                         c0=None if args.c0 is None else args.c0[lo:hi],
                         lengths=None if args.lengths is None else args.lengths[lo:hi],
                         B=hi - lo)


def _as_block(job):
    """job() marked as a block of a split in the thread that runs it (see blocks)."""
    _state.inside = True
    try:
        return job()
    finally:
        _state.inside = False


def _run_blocks(jobs):
    """Run jobs[0] here and the others in worker threads, in one one-thread section of
    scipy's BLAS (blas.pxd: the kernels inside join it; the caller's count is restored
    when the last section closes); their results in order."""
    token = blas.one_thread_enter()
    try:
        futures = [_workers(len(jobs) - 1).submit(_as_block, job) for job in jobs[1:]]
        try:
            first = _as_block(jobs[0])
        finally:
            others = [f.result() for f in futures]   # wait for all even if one failed
        return [first, *others]
    finally:
        blas.one_thread_exit(token)


def _place(args, parts, bounds, shape):
    """The blocks' (T, b, .) or (B, T, .) arrays side by side along B, in a new array (of
    the recycled buffers, as the plain path's outputs)."""
    out = workspace.empty(shape, args.dtype)
    for part, (lo, hi) in zip(parts, bounds):
        if args.batch_first:
            out[lo:hi] = part
        else:
            out[:, lo:hi] = part
    return out


def forward(args, bounds, run_forward):
    """The split forward of validated, non-empty arguments: (h, SplitCache). run_forward:
    the driver's plain forward of validated arguments, run on each block."""
    jobs = [lambda lo=lo, hi=hi: run_forward(_block_args(args, lo, hi)) for lo, hi in bounds]
    results = _run_blocks(jobs)
    T, B, H = args.T, args.B, args.H
    h = _place(args, [r[0] for r in results], bounds, (B, T, H) if args.batch_first else (T, B, H))
    return h, SplitCache(args, bounds, [r[1] for r in results])


def backward(dh, cache, finals, run_backward):
    """The split backward from a SplitCache (dh and finals validated): the Grads record.
    run_backward: the driver's plain backward, run on each block's cache."""
    args, bounds = cache.args, cache.blocks
    spec = args.spec
    n_states = len(spec.states)

    def job(k, lo, hi):
        block_dh = None if dh is None else _rows(args, dh, lo, hi)
        block_finals = tuple(None if f is None else f[lo:hi] for f in finals)
        return run_backward(block_dh, cache.caches[k], block_finals)

    parts = _run_blocks([lambda k=k, lo=lo, hi=hi: job(k, lo, hi)
                         for k, (lo, hi) in enumerate(bounds)])
    dx = _place(args, [g.dx for g in parts], bounds, args.x.shape)
    carries = [np.concatenate([g[1 + s] for g in parts]) for s in range(n_states)]
    # the shared parameters' gradients (every field after the state gradients), summed in
    # block order; block 0's arrays are new, so they take the sum
    totals = list(parts[0][1 + n_states:])
    for g in parts[1:]:
        for total, part in zip(totals, g[1 + n_states:]):
            if total is not None:
                total += part
    return spec.grads(dx, *carries, *totals)
