"""Scratch buffers of the backward passes, kept between calls.

A backward pass needs two large arrays that it does not return: the gate gradients of
every step, dA (T*B, G'*H), and, when its per-step GEMM runs transposed, W_hh^T
(H, G*H). Allocated fresh on every call, they are fresh pages for the kernel to fault
in and zero on every call: at (T, B, H) = (50, 64, 1024) an LSTM backward touches
68 MB of them. On this project's VMs that cost 4-18% of the call, and more on the calls
where the hypervisor has taken back the pages the previous call freed (300 ms stalls on
every other call, bench/RESULTS.md "Page faults and the workspace"). Reusing one buffer
per role, as a training loop calls backward again and again on the same shapes, removes
that cost.

The buffers are private to a thread (threading.local), so concurrent calls in different
threads never share one, and a call finishes with its buffer before the next call in
the same thread can start. No returned array is ever a view of one. What is kept is
bounded: at most `limit` bytes per thread (set_workspace_limit, default 256 MiB); a
larger request gets a plain new array that is freed with the call. release_workspace()
frees the calling thread's buffers now.
"""
import threading

import numpy as np

DEFAULT_LIMIT = 256 * 2**20

_limit = DEFAULT_LIMIT
_local = threading.local()


def _pool():
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    return pool


def scratch(role, shape, dtype):
    """An uninitialised C-contiguous array of `shape` and `dtype` for use inside one call
    only, backed by the calling thread's kept buffer for `role` (grown when too small), or
    a new array when keeping it would exceed the limit."""
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    pool = _pool()
    if pool and sum(b.nbytes for b in pool.values()) > _limit:
        pool.clear()   # the limit was lowered since these were kept
    buf = pool.get(role)
    if buf is None or buf.nbytes < nbytes:
        if buf is not None:
            del pool[role]   # freed before its successor is allocated
        kept = sum(b.nbytes for b in pool.values())
        if kept + nbytes > _limit:
            return np.empty(shape, dtype)
        # float64 elements: 8-byte alignment whatever view is taken of it
        buf = pool[role] = np.empty(-(-nbytes // 8), np.float64)
    return buf.view(np.uint8)[:nbytes].view(dtype).reshape(shape)


def release_workspace():
    """Free the calling thread's kept backward buffers (they are re-made on demand)."""
    _pool().clear()


def set_workspace_limit(nbytes):
    """Keep at most `nbytes` of backward scratch per thread (0: keep none); returns the
    previous limit. Buffers already kept above the new limit are freed."""
    global _limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}")
    previous, _limit = _limit, int(nbytes)
    pool = _pool()
    if sum(b.nbytes for b in pool.values()) > _limit:
        pool.clear()
    return previous


def workspace_bytes():
    """The bytes of backward scratch the calling thread keeps now."""
    return sum(b.nbytes for b in _pool().values())
