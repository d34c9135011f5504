"""`mpiexec -n N fastbptt demo` (or srun): the demo's hooks for a multi-rank launch.

fastbptt.app.demo.run calls run_distributed when the launcher says there are several ranks
(fastbptt.runtime.launch). --batch stays the global number of text streams: rank r trains the
whole streams stream_slice(batch, r, N), the gradients are averaged (then clipped, then
Adam steps) by DistributedOptimizer, so each step is the single-process step on all
streams. Rank 0 alone prints, samples, and writes the checkpoint and the plot; the loss
shown is the global one and chars/s counts the characters of all ranks. Any error after
the ranks started working together ends the whole job (MPI_Abort) with one line, as a
hung collective would otherwise wait forever.
"""
import dataclasses
import sys

from fastbptt.distributed.optimizer import DistributedOptimizer
from fastbptt.distributed.runtime import abort, drain_stderr, init
from fastbptt.distributed.sharding import stream_slice


class OtherRankError(ValueError):
    """The error rank 0 reports; raised on the other ranks so that they exit with it
    without printing it again (the CLI prints only errors with .report True)."""
    report = False


class DemoHooks:
    """What demo._run asks of a distributed run: the streams of this rank, the wrapped
    optimizer, its step, and whether this rank is the one that talks."""

    def __init__(self, context, batch):
        self.context = context
        self.streams = stream_slice(batch, context.rank, context.size, even=True)
        self.batch = batch

    @property
    def is_root(self):
        return self.context.is_root

    def describe(self):
        threads = self.context.blas_threads
        return (f"MPI: {self.context.size} ranks, {self.streams.stop - self.streams.start} "
                f"of the {self.batch} streams each, BLAS "
                f"{'as set by the environment' if threads is None else f'{threads} thread(s)'}"
                f" per rank; losses and chars/s are of all ranks")

    def shard(self, inputs, targets):
        """This rank's streams (columns) of the (T, B) inputs and targets."""
        return inputs[:, self.streams].copy(), targets[:, self.streams].copy()

    def wrap(self, optimizer, clip):
        return DistributedOptimizer(optimizer, clip=clip, comm=self.context.comm)

    def step(self, optimizer, window):
        """Average, clip and step; the global mean loss of the window."""
        local_streams = self.streams.stop - self.streams.start
        count = (window.stop - window.loss_start) * local_streams
        return optimizer.step(window.grads, loss=window.loss, count=count).loss


def run_distributed(options, out, run, rank, size):
    """Run the demo's training function `run(options, out, hooks)` as rank `rank` of
    `size`. ValueError (on rank 0; OtherRankError elsewhere) for a --batch that the
    ranks cannot share evenly, before any MPI call."""
    if options.batch % size:
        message = (f"--batch {options.batch} is not divisible by the {size} MPI ranks: "
                   f"--batch is the global number of streams, split evenly across ranks "
                   f"(try --batch {max(size, options.batch // size * size)})")
        raise ValueError(message) if rank == 0 else OtherRankError(message)
    context = init(threads="auto" if options.threads is None else options.threads)
    if context.blas_threads is not None:
        options = dataclasses.replace(options, threads=context.blas_threads)
    hooks = DemoHooks(context, options.batch)
    try:
        return run(options, out if context.is_root else _quiet, hooks)
    except BaseException as err:   # the others may be waiting in a collective: end them
        print(f"fastbptt demo: error on rank {context.rank}: {err}", file=sys.stderr)
        drain_stderr()   # so that the launcher forwards the line before the abort
        abort(context.comm)


def _quiet(*args, **kwargs):
    pass
