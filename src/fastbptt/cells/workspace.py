"""Large arrays of the cells' forward and backward passes, recycled between calls.

A training loop calls forward and backward again and again on the same shapes, and each
call allocates the same large arrays: the states and gates kept for backward, the
outputs, the gradients, the gate-gradient workspace. Allocated fresh, each is fresh
pages for the kernel to fault in and zero on every call, and on VMs that hand freed
memory back to the host (free page reporting, as on this project's Firecracker VMs) the
host faults them in again too: at (T, B, H) = (50, 64, 1024) that cost the LSTM 10-20%
of a call, and at T = 100,000, B = 1 more than half of its forward (bench/RESULTS.md,
"Page faults and the workspace").

So arrays of at least MIN_BYTES come from `empty`, which hands out a view of a kept
buffer that nothing references any more, or keeps a new one. A buffer is free when its
reference count says only this pool holds it: every numpy view of it (the arrays
returned to the caller, a cache's arrays, their views) holds a reference, so a buffer
is reused only once no array can reach its memory. That makes a returned array as
private as a freshly allocated one; it merely has a `.base`.

The pool is per thread (threading.local): two threads never hand out the same buffer.
Its size is bounded: the buffers it keeps, in use or free, total at most the limit
(set_workspace_limit, default 1 GiB per thread); past it, requests get plain new arrays.
release_workspace() drops the calling thread's buffers (those still in use live on with
their arrays), and the packed copies of W_hh that the kernels keep between calls
(_kernels/step_alloc.h: a few for the process, for the same reason).
"""
import math
import sys
import threading

import numpy as np

from fastbptt._kernels import step_packing

MIN_BYTES = 1 << 20
DEFAULT_LIMIT = 1 << 30

_limit = DEFAULT_LIMIT
_local = threading.local()


def _buffers():
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = []
    return buffers


def _count_free_refs():
    """The reference count a buffer shows in the loops below when only the pool's list
    holds it (the list's slot, the loop variable, getrefcount's argument)."""
    probe = [np.empty(1)]
    for buf in probe:
        return sys.getrefcount(buf)


_FREE_REFS = _count_free_refs()


def empty(shape, dtype, _prod=math.prod, _new=np.empty):
    """An uninitialised C-contiguous array of `shape` and `dtype` (a np.dtype): a view of
    a free kept buffer of this thread (from nbytes up to twice that) when there is one,
    else of a new kept buffer while the limit allows, else a plain new array. Small
    arrays (under MIN_BYTES) are always plain. (_prod and _new are bound as defaults:
    local lookups, on a path every call of a cell takes several times.)"""
    nbytes = _prod(shape) * dtype.itemsize   # dtype: a numpy dtype object
    if nbytes < MIN_BYTES:
        return _new(shape, dtype)
    buffers = _buffers()
    best = None
    for buf in buffers:
        if (nbytes <= buf.nbytes <= 2 * nbytes and sys.getrefcount(buf) == _FREE_REFS
                and (best is None or buf.nbytes < best.nbytes)):
            best = buf
    if best is None:
        kept = sum(buf.nbytes for buf in buffers)
        if kept + nbytes > _limit:
            _drop_free(buffers)
            kept = sum(buf.nbytes for buf in buffers)
            if kept + nbytes > _limit:
                return np.empty(shape, dtype)
        # float64 elements: 8-byte alignment whatever view is taken of it
        best = np.empty(-(-nbytes // 8), np.float64)
        buffers.append(best)
    return best.view(np.uint8)[:nbytes].view(dtype).reshape(shape)


def copy(a):
    """A C-contiguous copy of the array `a` (any strides), in an array from `empty`."""
    if a.nbytes < MIN_BYTES:
        return a.copy()   # one call instead of empty + copyto: the small calls' cost
    out = empty(a.shape, a.dtype)
    np.copyto(out, a)
    return out


def _drop_free(buffers):
    """Forget the free buffers of `buffers` (freeing them); those in use stay."""
    keep = []
    for buf in buffers:
        if sys.getrefcount(buf) != _FREE_REFS:
            keep.append(buf)
    buffers[:] = keep


def release_workspace():
    """Forget the calling thread's kept buffers, and the packed weights kept for every thread.

    The free ones are freed now, those still in use when the arrays using them are. The
    packed copies of W_hh that the compiled kernels keep between calls (a few, for the
    process) are freed too; the next packed call allocates afresh.
    """
    _buffers().clear()
    step_packing.release_kept_weights()


def set_workspace_limit(nbytes):
    """Keep at most ``nbytes`` of recycled buffers per thread.

    The calling thread's free buffers are dropped when it keeps more than the new limit;
    another thread's, at its next call over the limit.

    Parameters
    ----------
    nbytes : int
        The bound, >= 0 (default 1 GiB); 0 keeps none, so every array is new.

    Returns
    -------
    int
        The previous limit.

    Raises
    ------
    ValueError
        A negative or non-int ``nbytes``.
    """
    global _limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}")
    previous, _limit = _limit, int(nbytes)
    buffers = _buffers()
    if sum(buf.nbytes for buf in buffers) > _limit:
        _drop_free(buffers)
        if sum(buf.nbytes for buf in buffers) > _limit:
            buffers.clear()   # those in use live on with their arrays, unkept
    return previous


def workspace_bytes():
    """The bytes of buffers the calling thread keeps now, in use or free.

    Returns
    -------
    int
    """
    return sum(buf.nbytes for buf in _buffers())
