"""DistributedOptimizer: average over the ranks, then clip, then step.

    g = GradientAverager.average(...)        the combined batch's gradient, on every rank
    clip_grad_norm(g, clip)                  on the averaged gradient, as one process would
    optimizer.step(g)                        the wrapped fastbptt optimizer, unchanged

The order is what makes the update the single-process update on the combined batch:
clipping each rank's own gradient before averaging would clip by the wrong norm. Every
rank then runs the same deterministic step on the same bits, so the replicas stay
bit-identical (check_replicas verifies it). At construction rank 0's parameters and
optimizer state are broadcast, so every rank starts from the same point.
"""
import math
from typing import NamedTuple

from fastbptt import clip_grad_norm
from fastbptt.distributed.averaging import GradientAverager
from fastbptt.distributed.broadcast import broadcast_optimizer_state, broadcast_params
from fastbptt.distributed.runtime import check_comm


class StepResult(NamedTuple):
    """What DistributedOptimizer.step returns: the combined batch's mean loss, its sample
    count, and the averaged gradient's global L2 norm before clipping (None without
    clip)."""
    loss: float
    count: float
    grad_norm: object


class DistributedOptimizer:
    """DistributedOptimizer(optimizer, clip=None, comm=None, broadcast=True, root=0).

    optimizer: a fastbptt optimizer (SGD, Momentum, Adagrad, Adam) built on the same
    parameter dict on every rank; clip: max global norm of the averaged gradient (None: no
    clipping); broadcast: start every rank from root's parameters and state (collective).
    step(grads, loss, count) is collective: every rank must call it the same number of
    times.
    """

    def __init__(self, optimizer, clip=None, comm=None, broadcast=True, root=0):
        self.comm = check_comm(comm)
        params = getattr(optimizer, "params", None)
        if not (isinstance(params, dict) and callable(getattr(optimizer, "step", None))):
            raise TypeError(f"optimizer must be a fastbptt optimizer (with .params and "
                            f".step), got {type(optimizer).__name__}")
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, (int, float)):
                raise TypeError(f"clip must be a positive number or None, got {clip!r}")
            if not (math.isfinite(clip) and clip > 0):
                raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
        if not isinstance(broadcast, bool):
            raise TypeError(f"broadcast must be a bool, got {broadcast!r}")
        self.optimizer = optimizer
        self.clip = clip
        if broadcast:
            broadcast_params(params, root=root, comm=self.comm)
            broadcast_optimizer_state(optimizer, root=root, comm=self.comm)
        self.averager = GradientAverager(params, comm=self.comm)

    @property
    def params(self):
        return self.optimizer.params

    def step(self, grads, loss=0.0, count=1):
        """Average grads (this rank's mean gradient over its count samples; None when
        count == 0) over all ranks, clip, and step. Returns a StepResult."""
        averaged = self.averager.average(grads, loss, count)
        norm = clip_grad_norm(averaged.grads, self.clip) if self.clip is not None else None
        self.optimizer.step(averaged.grads)
        return StepResult(averaged.loss, averaged.count, norm)

    def state_dict(self):
        """The wrapped optimizer's state_dict (the same on every rank)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict):
        """Load into the wrapped optimizer on every rank (each rank passes the same)."""
        self.optimizer.load_state_dict(state_dict)
