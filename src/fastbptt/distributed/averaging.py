"""GradientAverager: the combined-batch gradient from every rank's, in one Allreduce.

Rank r computes, on its n_r samples, the mean loss L_r and its gradient g_r = dL_r/dw.
The combined batch of N = sum_r n_r samples has mean loss and gradient

    L = sum_r n_r L_r / N,        g = sum_r n_r g_r / N,

so each rank writes n_r g_r, n_r L_r and n_r into one preallocated flat buffer
(all gradients concatenated, then the two scalars), one in-place
MPI_Allreduce(MPI_IN_PLACE, buffer, SUM) adds the buffers of all ranks, and dividing by
the summed N gives g and L on every rank. Weighting by n_r makes uneven shards (a short
last minibatch, streams that do not divide evenly) exact; a rank with no samples sends
zeros. No pickling and no allocation per call: the averaged gradients are views into the
buffer, overwritten by the next call.

There is one buffer per dtype (so one call for a float32 or a float64 model); the loss and
the count ride in the float64 buffer if there is one, else in the float32 one (exact for
counts up to 2**24 samples per step).
"""
from typing import NamedTuple

import numpy as np
from mpi4py import MPI

from fastbptt.distributed.broadcast import check_array_dict, check_same_layout, layout
from fastbptt.distributed.runtime import check_comm


class Averaged(NamedTuple):
    """What GradientAverager.average returns: grads {name: view into the buffer}, the
    combined batch's mean loss, and N, the number of samples of the combined batch."""
    grads: dict
    loss: float
    count: float


class GradientAverager:
    """GradientAverager(params, comm=None): buffers laid out like params {name: ndarray}
    (collective: every rank must pass the same layout). average(grads, loss, count)."""

    def __init__(self, params, comm=None):
        self.comm = check_comm(comm)
        check_array_dict("params", params, writable=False)
        check_same_layout("params", layout(params), self.comm)
        self._shapes = {k: p.shape for k, p in params.items()}
        self._dtypes = {k: p.dtype for k, p in params.items()}
        dtypes = sorted({p.dtype for p in params.values()}, key=lambda d: d.itemsize,
                        reverse=True)            # float64 first: it carries the scalars
        self._buffers, self.grads = [], {}
        for i, dtype in enumerate(dtypes):
            keys = [k for k, p in params.items() if p.dtype == dtype]
            n = sum(params[k].size for k in keys)
            buffer = np.zeros(n + (2 if i == 0 else 0), dtype)
            offset = 0
            for k in keys:
                size = params[k].size
                self.grads[k] = buffer[offset:offset + size].reshape(params[k].shape)
                offset += size
            self._buffers.append(buffer)
        self.grads = {k: self.grads[k] for k in params}   # the params' order
        self._scalars = self._buffers[0][-2:]            # [sum n_r L_r, sum n_r]

    @property
    def nbytes(self):
        """Bytes sent per average() call and rank (all buffers)."""
        return sum(b.nbytes for b in self._buffers)

    def average(self, grads, loss=0.0, count=1):
        """The combined batch's mean gradient, mean loss and sample count, identical on
        every rank (collective). grads {name: ndarray} like params (read only), or None
        when count == 0; loss: this rank's mean loss over its count samples; count: its
        number of samples (>= 0; the weights need not be integers)."""
        count = _check_count(count)
        loss = _check_loss(loss)
        if grads is None:
            if count != 0:
                raise ValueError("grads may be None only on a rank with count=0 samples")
            for b in self._buffers:
                b.fill(0)
        else:
            self._check_grads(grads)
            for k, g in grads.items():
                np.multiply(g, count, out=self.grads[k])
        self._scalars[0] = loss * count if count else 0.0
        self._scalars[1] = count
        for b in self._buffers:
            self.comm.Allreduce(MPI.IN_PLACE, b, op=MPI.SUM)
        total_loss, total = float(self._scalars[0]), float(self._scalars[1])
        if not total > 0:
            raise ValueError(f"no samples on any rank (the counts sum to {total})")
        for b in self._buffers:
            np.divide(b, total, out=b)
        return Averaged(self.grads, total_loss / total, total)

    def _check_grads(self, grads):
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict {{name: ndarray}}, got "
                            f"{type(grads).__name__}")
        missing = [k for k in self._shapes if k not in grads]
        unexpected = [k for k in grads if k not in self._shapes]
        if missing or unexpected:
            raise ValueError(f"grads must have exactly the parameters' keys: missing "
                             f"{missing}, unexpected {unexpected}")
        for k, g in grads.items():
            if not isinstance(g, np.ndarray):
                raise TypeError(f"grads[{k!r}] must be a NumPy array, got "
                                f"{type(g).__name__}")
            if g.shape != self._shapes[k] or g.dtype != self._dtypes[k]:
                raise ValueError(f"grads[{k!r}] must have the parameter's shape "
                                 f"{self._shapes[k]} and dtype {self._dtypes[k]}, got "
                                 f"{g.shape} {g.dtype}")


def _check_count(count):
    if isinstance(count, bool) or not isinstance(count, (int, float, np.integer,
                                                         np.floating)):
        raise TypeError(f"count must be a number of samples, got {type(count).__name__}")
    if not (np.isfinite(count) and count >= 0):
        raise ValueError(f"count must be a finite number >= 0, got {count!r}")
    return float(count)


def _check_loss(loss):
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"loss must be a real number, got {type(loss).__name__}") from None
