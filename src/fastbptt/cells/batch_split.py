"""Two cores for one call: the batch split of the compiled forward and backward.

The sequences of a batch are independent until the weight gradients, which are sums over
them. So with n >= 2 BLAS threads and B >= 2 the driver (cells/driver.py, run_forward
and run_backward) hands a large enough problem here: its B rows are cut into
min(n, B) contiguous blocks of rows (sizes differing by at most one), each block runs
the whole plain forward (or backward) of its rows in its own Python thread, and the
kernels run with the GIL released, so the blocks' time loops run on separate cores.
A block without lengths goes through the compiled fast path (cells/_fastpath.pyx: its
arrays are C-contiguous, so the fast path takes them and checks them again in C, which
costs less than the driver's Python), the others through the driver's plain forward or
backward, with the same bits. During the split scipy's BLAS is on one thread
(fastbptt._kernels.blas: a one-thread section, as in every kernel call): each block's
products run in the thread that calls them. Each block writes its rows of the outputs
itself, so the blocks' copies overlap:

    h (T, B, H) = the blocks' h side by side along B; the final states likewise;
    dx, dh0 (and dc0): the blocks' rows side by side;
    dW_ih, dW_hh, db_ih, db_hh = sum over blocks k = 0, 1, ... of block k's, in that order.

The fixed block order makes results bit-identical from run to run at a fixed thread
count. They are not bit-identical to the one-thread path: a block's products run over
its rows only (OpenBLAS's result for a row can depend on how it blocks the rows; a block
of at most spec.GEMV_ROWS rows takes the per-row GEMV step form), and the weight
gradients are summed per block, then across blocks; they agree to rounding
(tests/test_batch_split.py).

When it pays: the split costs a hand-off to a worker thread and back (two locks), a
second check of each block's arrays, and copies of x, dh and the outputs (time-major
rows of a block are strided); it is taken only when one forward holds at least
MIN_SPLIT_FLOPS of matrix products (bench/RESULTS.md, "Batch split"). Checkpointed calls
split each segment's forward and backward the same way.

The worker threads are kept for the process (forgotten after a fork); a split takes as
many idle ones as it needs, or starts more while other callers' splits hold theirs. Like
every thread they keep their own recycled buffers (cells/workspace.py), which
release_workspace() in the caller's thread does not drop.
"""
import os
import threading

import numpy as np

from fastbptt._kernels import blas
from fastbptt.cells import _fastpath, workspace
from fastbptt.cells.cache import CellCache

# The least forward FLOPs, 2*T*B*(I+H)*G*H, for which a split is taken: a split costs a
# fixed hand-off and copies, so it lost at 1.0e8 (an LSTM at (50,8,128)) and won from
# 4e8 on every cell (bench/RESULTS.md, "Batch split: the threshold on a quiet machine").
MIN_SPLIT_FLOPS = 200_000_000

_idle = []   # the workers waiting for a block (list.pop / append: atomic under the GIL)


class _Worker:
    """A thread kept for the process that runs one block at a time, handed over with two
    plain locks (a lock is the lightest primitive Python threads can wait on: one futex
    each way, where an executor's Future, queue and condition variable took several; see
    bench/RESULTS.md, "Batch split: where the fixed cost went")."""

    def __init__(self):
        self._go = threading.Lock()     # released by the caller: a job is waiting
        self._done = threading.Lock()   # released by the worker: the job has ended
        self._go.acquire()
        self._done.acquire()
        self._job = self._result = self._error = None
        threading.Thread(target=self._loop, name="fastbptt-split", daemon=True).start()

    def _loop(self):
        _state.inside = True   # every job here is a block of a split
        while True:
            self._go.acquire()
            try:
                self._result = self._job()
            except BaseException as exc:   # handed to the caller, which raises it
                self._error = exc
            self._job = None
            self._done.release()

    def start(self, job):
        self._job, self._result, self._error = job, None, None
        self._go.release()

    def wait(self):
        """Wait for the job to end: (its result, the exception it raised or None)."""
        self._done.acquire()
        result, error = self._result, self._error
        self._result = self._error = None
        return result, error


def _forget_pool():
    """After a fork the child has none of the parent's threads: forget their workers."""
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _take_worker():
    """An idle worker, or a new one when every worker is running a block (of another
    caller's split: each split has its workers to itself until it ends)."""
    try:
        return _idle.pop()
    except IndexError:
        return _Worker()


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
        workers = []
        try:
            for job in jobs[1:]:
                worker = _take_worker()
                worker.start(job)
                workers.append(worker)
            first = _as_block(jobs[0])
        finally:
            # wait for every started block even if one failed; a worker goes back to the
            # idle list only once its block has ended (one whose wait was interrupted, by
            # KeyboardInterrupt, may still be running it: it is never handed a job again)
            others, error = [], None
            for worker in workers:
                try:
                    result, failed = worker.wait()
                except BaseException as exc:
                    error = error or exc
                    continue
                _idle.append(worker)
                others.append(result)
                error = error or failed
            if error is not None:
                raise error
        return [first, *others]
    finally:
        blas.one_thread_exit(token)


def _put(args, out, part, lo, hi):
    """Write a block's (T, b, .) or (b, T, .) batch-first array into rows lo..hi-1 of out,
    in the block's own thread (numpy's copy releases the GIL, so the blocks' copies
    overlap)."""
    if args.batch_first:
        out[lo:hi] = part
    else:
        out[:, lo:hi] = part


def _optional_bias(args, b):
    """The caller's bias as the fast path takes it: None when the call had none (the
    CellArgs hold zeros then, and a given bias would get gradients)."""
    return b if args.has_bias else None


def _forward_block(args, lo, hi, run_forward, h):
    """The forward of rows lo..hi-1, its outputs written into h; returns its cache. The
    compiled fast path runs it when it can (no lengths, I >= 1: a block's arrays are
    C-contiguous; not a checkpoint segment's block, whose step form is its whole call's,
    args.steps, which the fast path does not take), else the driver's plain forward: both
    give the same bits."""
    block = _block_args(args, lo, hi)
    done = None
    if block.lengths is None and block.I and block.steps is None:
        done = _fastpath.forward(block.spec, block.x, block.states, block.W_ih, block.W_hh,
                                 _optional_bias(args, block.b_ih),
                                 _optional_bias(args, block.b_hh), block.batch_first, None,
                                 False, None, block.nonlinearity)
    part, cache = done if done is not None else run_forward(block)
    _put(args, h, part, lo, hi)
    return cache


def _backward_block(dh, cache, finals, run_backward):
    """The backward of one block's cache (dh and finals its rows): its Grads record. The
    fast path when it takes the cache, else the driver's plain backward (same bits)."""
    grads = _fastpath.backward(cache.spec, dh, cache, finals, False)
    if grads is None:
        grads = run_backward(dh, cache, finals)
    return grads


def forward(args, bounds, run_forward):
    """The split forward of validated, non-empty arguments: (h, SplitCache). run_forward:
    the driver's plain forward of validated arguments, run on a block the fast path does
    not take."""
    T, B, H = args.T, args.B, args.H
    h = workspace.empty((B, T, H) if args.batch_first else (T, B, H), args.dtype)
    caches = _run_blocks([lambda lo=lo, hi=hi: _forward_block(args, lo, hi, run_forward, h)
                          for lo, hi in bounds])
    return h, SplitCache(args, bounds, caches)


def backward(dh, cache, finals, run_backward):
    """The split backward from a SplitCache (dh and finals validated): the Grads record.
    run_backward: the driver's plain backward, run on a block the fast path does not
    take."""
    args, bounds = cache.args, cache.blocks
    spec = args.spec
    n_states = len(spec.states)
    dx = workspace.empty(args.x.shape, args.dtype)

    def job(k, lo, hi):
        block_dh = None if dh is None else _rows(args, dh, lo, hi)
        block_finals = tuple(None if f is None else f[lo:hi] for f in finals)
        grads = _backward_block(block_dh, cache.caches[k], block_finals, run_backward)
        _put(args, dx, grads.dx, lo, hi)
        return grads

    parts = _run_blocks([lambda k=k, lo=lo, hi=hi: job(k, lo, hi)
                         for k, (lo, hi) in enumerate(bounds)])
    carries = [np.concatenate([g[1 + s] for g in parts]) for s in range(n_states)]
    # the shared parameters' gradients (every field after the state gradients), summed in
    # block order; block 0's arrays are new, so they take the sum
    totals = list(parts[0][1 + n_states:])
    for g in parts[1:]:
        for total, part in zip(totals, g[1 + n_states:]):
            if total is not None:
                total += part
    return spec.grads(dx, *carries, *totals)
