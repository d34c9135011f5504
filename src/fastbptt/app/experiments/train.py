"""The training loop the experiments share, and the measurements it records.

One step: draw a batch, compute the loss and every gradient (the task's loss_and_grads),
take the global gradient norm (clip_grad_norm's, measured before clipping), clip when asked
and take an optimizer step. A step whose gradient norm is NaN or Inf is not applied (the
rule clip_grad_norm documents: it leaves such gradients untouched for the caller to
skip); it is counted, which is what the exploding experiment reports.
"""
import dataclasses
import math
import time

import numpy as np

import fastbptt


@dataclasses.dataclass
class History:
    """What one training run recorded, step by step (1-based steps)."""
    loss: list = dataclasses.field(default_factory=list)          # training loss per step
    grad_norm: list = dataclasses.field(default_factory=list)     # before clipping
    eval_steps: list = dataclasses.field(default_factory=list)
    evals: list = dataclasses.field(default_factory=list)         # dicts from evaluate()
    seconds: float = 0.0          # wall time of the training steps (evaluations included)
    cpu_seconds: float = 0.0      # this process's CPU time over the same steps

    @property
    def nonfinite_steps(self):
        """How many steps had a NaN or Inf gradient norm (and were not applied)."""
        return sum(not math.isfinite(n) for n in self.grad_norm)

    def to_dict(self):
        return {"loss": [float(v) for v in self.loss],
                "grad_norm": [float(v) for v in self.grad_norm],
                "eval_steps": list(self.eval_steps), "evals": list(self.evals),
                "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds, "nonfinite_steps": self.nonfinite_steps}


def global_norm(grads):
    """sqrt(sum over arrays of sum(g^2)), accumulated in float64 (clip_grad_norm's norm)."""
    return math.sqrt(sum(float(np.linalg.norm(g.ravel().astype(np.float64))) ** 2
                         for g in grads.values()))


def train(model, next_batch, loss_and_grads, steps, optimizer, clip=None, evaluate=None,
          eval_every=None, progress=None):
    """Train model for `steps` steps; return a History.

    next_batch() -> a batch; loss_and_grads(model, batch) -> (loss, grads) with grads
    keyed like model.params; optimizer: a fastbptt optimizer on model.params; clip: the
    max global norm, or None for no clipping; evaluate(model) -> a dict of test metrics,
    called every `eval_every` steps, after the last one and before the first (step 0);
    progress: a tqdm bar (or None), advanced one per step.
    """
    history = History()
    eval_every = eval_every or max(1, steps // 20)

    def record_eval(step):
        if evaluate is not None:
            history.eval_steps.append(step)
            history.evals.append(evaluate(model))

    record_eval(0)
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(1, steps + 1):
        loss, grads = loss_and_grads(model, next_batch())
        if clip is None:
            norm = global_norm(grads)
        else:
            norm = fastbptt.clip_grad_norm(grads, clip)
        if math.isfinite(norm):
            optimizer.step(grads)
        history.loss.append(float(loss))
        history.grad_norm.append(norm)
        if step % eval_every == 0 or step == steps:
            record_eval(step)
        if progress is not None:
            progress.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
            progress.update()
    history.seconds = time.perf_counter() - start
    history.cpu_seconds = time.process_time() - cpu_start
    return history
