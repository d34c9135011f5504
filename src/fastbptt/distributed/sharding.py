"""Which part of the data each rank trains on, so that the collectives line up.

Stream-parallel truncated BPTT. A text (or any long sequence) is cut into B streams side
by side, (T, B, ...); rank r takes the whole streams stream_slice(B, r, p), a contiguous
block of B // p or B // p + 1 of them. Every rank keeps all T steps of its streams, so
every rank walks the same window schedule and calls step() as often as the others, and the
carried state of a stream never has to move between ranks. The combined batch of a window
is exactly the single-process batch of all B streams.

Many-to-one minibatches. The global minibatches are consecutive runs of batch_size
samples in a shared order (the same permutation on every rank, e.g. from a shared seed);
minibatch_shards cuts each one into p contiguous pieces, so the last, shorter minibatch
gives some ranks fewer samples, possibly none. Every rank still gets one entry per
minibatch (an empty index array where it has nothing), and with count-weighted averaging
the step equals the single-process step on the whole minibatch.
"""
import numpy as np

# truncated BPTT's integer check (private: its module moves in issue 13)
from fastbptt.training.tbptt import _check_int


def _check_rank(rank, size):
    size = _check_int("size", size, 1)
    rank = _check_int("rank", rank, 0)
    if rank >= size:
        raise ValueError(f"rank must be < size = {size}, got {rank}")
    return rank, size


def _block(n, rank, size):
    """[lo, hi) of rank's contiguous piece of n items; pieces differ by at most one."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def stream_slice(n_streams, rank, size, even=False):
    """The slice of the n_streams streams that rank (of size ranks) trains on.

    ValueError when a rank would get no stream (n_streams < size), or, with even=True,
    when n_streams is not divisible by size."""
    rank, size = _check_rank(rank, size)
    n_streams = _check_int("n_streams", n_streams, 1)
    if n_streams < size:
        raise ValueError(f"{n_streams} streams cannot be shared by {size} ranks: every "
                         f"rank needs at least one whole stream")
    if even and n_streams % size:
        raise ValueError(f"{n_streams} streams do not divide evenly among {size} ranks")
    lo, hi = _block(n_streams, rank, size)
    return slice(lo, hi)


def minibatch_shards(n_samples, batch_size, rank, size, order=None):
    """rank's sample indices for every global minibatch: a list of int64 index arrays,
    one per minibatch (ceil(n_samples / batch_size) of them), possibly empty.

    Minibatch j is order[j*batch_size : (j+1)*batch_size] (order: a permutation of
    range(n_samples), the same on every rank; None for 0, 1, ...), cut into size
    contiguous pieces of which rank takes piece rank."""
    rank, size = _check_rank(rank, size)
    n_samples = _check_int("n_samples", n_samples, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if order is None:
        order = np.arange(n_samples, dtype=np.int64)
    else:
        order = np.asarray(order)
        if (order.shape != (n_samples,) or not np.issubdtype(order.dtype, np.integer)
                or not np.array_equal(np.sort(order), np.arange(n_samples))):
            raise ValueError(f"order must be a permutation of range({n_samples}), an int "
                             f"array of shape ({n_samples},)")
        order = order.astype(np.int64)
    shards = []
    for start in range(0, n_samples, batch_size):
        batch = order[start:start + batch_size]
        lo, hi = _block(len(batch), rank, size)
        shards.append(batch[lo:hi].copy())
    return shards
