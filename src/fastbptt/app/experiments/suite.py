"""The four experiments: what each trains, on which data, against which baseline, and what
it measures (see docs/guide/experiments.md, "What BPTT's theory predicts, measured").

Each run_* function takes an Options and returns a Result: one row per (cell, T) with the
final test metric beside the task's baseline, the training histories, and the
gradient-flow profiles (fastbptt.gradient_flow) of each cell at the start and at the end of
training. Everything goes through fastbptt's public API.
"""
import dataclasses
import math
import time
from typing import Optional

import numpy as np
from threadpoolctl import threadpool_limits

import fastbptt
from fastbptt.app.experiments import tasks
from fastbptt.app.experiments.models import CELLS, HEAD_BIAS, HEAD_WEIGHT, Model
from fastbptt.app.experiments.train import train

EXPERIMENTS = ("adding", "copy", "exploding", "digits")


@dataclasses.dataclass
class Options:
    """One experiment's settings. None means the experiment's default (DEFAULTS, or
    QUICK with quick=True)."""
    cells: Optional[tuple] = None
    T: Optional[tuple] = None          # sequence lengths, one run per T
    steps: Optional[int] = None
    seed: int = 0
    threads: Optional[int] = 1         # BLAS threads; None: all cores
    quick: bool = False


@dataclasses.dataclass(frozen=True)
class Settings:
    """What an experiment trains with, once Options are filled in."""
    cells: tuple
    T: tuple
    steps: int
    hidden: int
    batch: int
    lr: float
    clip: Optional[float]
    test_size: int
    flow_batch: int = 8               # sequences the gradient-flow profile averages over
    radius: float = 0.0               # exploding: W_hh's spectral radius


# The defaults aim at under 5 minutes per experiment on the 2-core machine, with one BLAS
# thread (bench/RESULTS.md, "fastbptt experiment", records each run's wall and CPU time).
# The step counts are set by the slowest learner that must succeed: on adding at T = 200
# the LSTM sits on the always-answer-1 plateau for thousands of steps before it finds the
# first marker (seeds 0-2 left it between steps 4400 and 6000 at H = 32); on row-by-row
# digits the IRNN, whose input weights start at N(0, 0.001^2), is the last above 90%.
# The papers' hidden size 128 costs several times more per step than H = 32 and would not
# fit the limit (README, "What BPTT's theory predicts, measured"). Quick forms run in
# seconds for the tests.
DEFAULTS = {
    "adding": Settings(cells=CELLS, T=(200,), steps=6000, hidden=32, batch=32, lr=3e-3,
                       clip=1.0, test_size=1000),
    "copy": Settings(cells=CELLS, T=(100,), steps=2000, hidden=64, batch=32, lr=3e-3,
                     clip=1.0, test_size=500),
    "exploding": Settings(cells=("rnn",), T=(50,), steps=300, hidden=64, batch=32, lr=0.1,
                          clip=1.0, test_size=500, radius=3.0),
    "digits": Settings(cells=CELLS, T=(8, 64), steps=1600, hidden=64, batch=64, lr=3e-3,
                       clip=1.0, test_size=0),
}
QUICK = {
    "adding": dataclasses.replace(DEFAULTS["adding"], cells=("rnn", "lstm"), T=(20,),
                                  steps=300, hidden=32, lr=1e-2, test_size=500),
    "copy": dataclasses.replace(DEFAULTS["copy"], cells=("gru",), T=(5,), steps=300,
                                hidden=32, lr=1e-2, test_size=200),
    "exploding": dataclasses.replace(DEFAULTS["exploding"], T=(20,), steps=30, hidden=32,
                                     test_size=200),
    "digits": dataclasses.replace(DEFAULTS["digits"], cells=("gru",), T=(8,), steps=150,
                                  hidden=32),
}
ALLOWED_CELLS = {"adding": CELLS, "copy": CELLS, "exploding": ("rnn", "irnn"),
                 "digits": CELLS}


def settings(name, options):
    """The Settings of experiment `name` under `options` (ValueError on a bad choice)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    base = (QUICK if options.quick else DEFAULTS)[name]
    s = dataclasses.replace(base, **{k: v for k, v in (("cells", options.cells),
                                                       ("T", options.T),
                                                       ("steps", options.steps))
                                     if v is not None})
    bad = [c for c in s.cells if c not in ALLOWED_CELLS[name]]
    if bad:
        raise ValueError(f"{name} runs the cells {', '.join(ALLOWED_CELLS[name])}; got "
                         f"{', '.join(map(repr, bad))}")
    for T in s.T:
        if name == "digits" and T not in (8, 64):
            raise ValueError("digits are read row by row (--T 8) or pixel by pixel (--T 64)")
        if name == "adding" and T < 2:
            raise ValueError("the adding problem needs T >= 2 (a marker in each half)")
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
    return s


@dataclasses.dataclass
class Result:
    """An experiment's outcome. rows: dicts with cell, T, the metric's final value, the
    baseline, seconds; histories and flows keyed by (cell, T) (flows: {"start", "end"}
    -> GradientFlow of the trained layer, float64)."""
    name: str
    metric: str                        # e.g. "test MSE"
    lower_is_better: bool
    baseline_name: str
    settings: Settings
    rows: list
    histories: dict
    flows: dict
    seconds: float = 0.0               # wall time of the whole experiment
    cpu_seconds: float = 0.0           # and the process's CPU time


def run(name, options=None, progress=None):
    """Run experiment `name` ("adding", "copy", "exploding", "digits"); return a Result.
    progress(total_steps) -> a tqdm-like bar, or None for none."""
    options = options or Options()
    s = settings(name, options)
    start, cpu_start = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=options.threads):
        result = _RUNNERS[name](s, options.seed, progress)
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu_start
    return result


def _bar(progress, s, runs):
    return progress(total=s.steps * runs) if progress is not None else None


def _profile(model, x, d_output):
    """Gradient flow of model's layer for L = sum(output * d_output), in float64: on long
    sequences the tanh RNN's norms fall below float32's smallest number."""
    layer = model.with_dtype(np.float64)
    return fastbptt.gradient_flow(layer, x.astype(np.float64), d_output.astype(np.float64))


def _many_to_one_grad(model, out, d_last):
    """dL/d(output) (T, B, H) for a loss on the last step only."""
    d_output = np.zeros_like(out)
    d_output[-1] = d_last
    return d_output


def _head_grads(grads, g):
    """The layer's gradients and the head's (g: HeadGrads) in one dict like model.params."""
    return {**grads, HEAD_WEIGHT: g.dW, HEAD_BIAS: g.db}


def _last_step_loss(loss_fn):
    """loss_and_grads for a loss on the last step's output (many-to-one); loss_fn one of
    fastbptt's fused heads (mean_squared_error, softmax_cross_entropy)."""
    def loss_and_grads(m, batch):
        x, y = batch
        out = m.forward(x)
        loss, g = loss_fn(out[-1], *m.head, y)
        return loss, _head_grads(m.backward(d_last=g.dh), g)
    return loss_and_grads


def _last_step_flow(loss_fn, x, y):
    """The gradient-flow profile of a last-step loss on the sequences x (T, N, I)."""
    def flow(m):
        out = m.forward(x)
        _, g = loss_fn(out[-1], *m.head, y)
        return _profile(m, x, _many_to_one_grad(m, out, g.dh))
    return flow


def _test_mse(x_test, y_test):
    def evaluate(m):
        loss, _ = fastbptt.mean_squared_error(m.forward(x_test)[-1], *m.head, y_test,
                                              compute_grad=False)
        return {"test MSE": float(loss)}
    return evaluate


# ---------------------------------------------------------------- adding

def _adding(s, seed, progress):
    rows, histories, flows = [], {}, {}
    bar = _bar(progress, s, len(s.cells) * len(s.T))
    for T in s.T:
        x_test, y_test = tasks.adding_batch(T, s.test_size, np.random.default_rng([seed, T, 1]))
        x_flow, y_flow = x_test[:, :s.flow_batch], y_test[:s.flow_batch]
        for cell in s.cells:
            model = Model(cell, 2, s.hidden, 1, seed=[seed, 0])
            rng = np.random.default_rng([seed, T, 2])     # the same batches for every cell

            flow = _last_step_flow(fastbptt.mean_squared_error, x_flow, y_flow)
            start = flow(model)
            if bar is not None:
                bar.set_description(f"adding T={T} {model.name}")
            h = train(model, lambda: tasks.adding_batch(T, s.batch, rng),
                      _last_step_loss(fastbptt.mean_squared_error), s.steps,
                      fastbptt.Adam(model.params, lr=s.lr), clip=s.clip,
                      evaluate=_test_mse(x_test, y_test), progress=bar)
            flows[cell, T] = {"start": start, "end": flow(model)}
            histories[cell, T] = h
            final = h.evals[-1]["test MSE"]
            rows.append({"cell": cell, "T": T, "test MSE": final,
                         "baseline": tasks.ADDING_BASELINE_MSE,
                         "ratio": final / tasks.ADDING_BASELINE_MSE, "seconds": h.seconds,
                         "cpu_seconds": h.cpu_seconds})
    if bar is not None:
        bar.close()
    return Result("adding", "test MSE", True, "always answer 1", s, rows, histories, flows)


# ---------------------------------------------------------------- copy

def _copy(s, seed, progress):
    rows, histories, flows = [], {}, {}
    bar = _bar(progress, s, len(s.cells) * len(s.T))
    V, K = tasks.COPY_VOCAB, tasks.COPY_LENGTH
    for T in s.T:
        baseline = tasks.copy_baseline(T)
        in_test, tg_test = tasks.copy_batch(T, s.test_size, np.random.default_rng([seed, T, 1]))
        x_test = tasks.one_hot(in_test, V)
        for cell in s.cells:
            model = Model(cell, V, s.hidden, V, seed=[seed, 0])
            rng = np.random.default_rng([seed, T, 2])

            def batch():
                inputs, targets = tasks.copy_batch(T, s.batch, rng)
                return tasks.one_hot(inputs, V), targets

            def loss_and_grads(m, b):
                x, targets = b
                out = m.forward(x)
                loss, g = fastbptt.softmax_cross_entropy(out, *m.head, targets)
                return loss, _head_grads(m.backward(g.dh), g)

            def evaluate(m):
                out = m.forward(x_test)
                loss, _ = fastbptt.softmax_cross_entropy(out, *m.head, tg_test,
                                                         compute_grad=False)
                W, b = m.head
                recalled = np.argmax(out[-K:] @ W.T + b, axis=-1)      # (K, N)
                return {"test loss": float(loss),
                        "recall accuracy": float(np.mean(recalled == tg_test[-K:]))}

            def flow(m):
                x, targets = x_test[:, :s.flow_batch], tg_test[:, :s.flow_batch]
                out = m.forward(x)
                _, g = fastbptt.softmax_cross_entropy(out, *m.head, targets)
                return _profile(m, x, g.dh)

            start = flow(model)
            if bar is not None:
                bar.set_description(f"copy T={T} {model.name}")
            h = train(model, batch, loss_and_grads, s.steps,
                      fastbptt.Adam(model.params, lr=s.lr), clip=s.clip, evaluate=evaluate,
                      progress=bar)
            flows[cell, T] = {"start": start, "end": flow(model)}
            histories[cell, T] = h
            final = h.evals[-1]
            rows.append({"cell": cell, "T": T, "test loss": final["test loss"],
                         "baseline": baseline, "ratio": final["test loss"] / baseline,
                         "recall accuracy": final["recall accuracy"],
                         "seconds": h.seconds, "cpu_seconds": h.cpu_seconds})
    if bar is not None:
        bar.close()
    return Result("copy", "test loss", True, "memoryless: 10 log(8) / (T + 20)", s, rows,
                  histories, flows)


# ---------------------------------------------------------------- exploding

def spectral_radius(W):
    """max |eigenvalue| of a square matrix."""
    return float(np.max(np.abs(np.linalg.eigvals(W.astype(np.float64)))))


def _quiet(function):
    """function with NumPy's overflow and invalid-value warnings off while it runs."""
    def quiet(*args):
        with np.errstate(over="ignore", invalid="ignore"):
            return function(*args)
    return quiet


def _exploding(s, seed, progress):
    """A tanh RNN (or IRNN) whose W_hh is rescaled to spectral radius s.radius > 1, trained
    by plain SGD (Pascanu et al.'s setting: Adam's step is bounded whatever the gradient) on
    the adding problem twice from the same weights and batches: with clip_grad_norm and
    without."""
    rows, histories, flows = [], {}, {}
    bar = _bar(progress, s, 2 * len(s.cells) * len(s.T))
    for T in s.T:
        x_test, y_test = tasks.adding_batch(T, s.test_size, np.random.default_rng([seed, T, 1]))
        x_flow, y_flow = x_test[:, :s.flow_batch], y_test[:s.flow_batch]
        for cell in s.cells:
            for clip in (None, s.clip):
                model = Model(cell, 2, s.hidden, 1, seed=[seed, 0])
                W_hh = model.params["weight_hh_l0"]
                W_hh *= s.radius / spectral_radius(W_hh)
                rng = np.random.default_rng([seed, T, 2])

                # an exploding network's gradient-flow norms overflow to inf (and inf * 0
                # to NaN) by design: that is what the table counts, not a warning to print
                flow = _quiet(_last_step_flow(fastbptt.mean_squared_error, x_flow, y_flow))
                label = "clipped" if clip else "unclipped"
                start = flow(model)
                if bar is not None:
                    bar.set_description(f"exploding T={T} {model.name} {label}")
                h = train(model, lambda: tasks.adding_batch(T, s.batch, rng),
                          _last_step_loss(fastbptt.mean_squared_error), s.steps,
                          fastbptt.SGD(model.params, lr=s.lr), clip=clip,
                          evaluate=_test_mse(x_test, y_test), progress=bar)
                key = (f"{cell} {label}", T)
                end = flow(model) if all(np.isfinite(p).all() for p in model.params.values()) \
                    else None
                flows[key] = {"start": start, "end": end}
                histories[key] = h
                norms = np.array(h.grad_norm)
                finite = norms[np.isfinite(norms)]
                rows.append({"cell": cell, "T": T, "clip": clip,
                             "max finite grad norm": float(np.max(finite)) if finite.size
                             else math.nan,
                             "median grad norm": float(np.median(finite)) if finite.size
                             else math.nan,
                             "non-finite steps": h.nonfinite_steps, "steps": s.steps,
                             "test MSE": h.evals[-1]["test MSE"],
                             "baseline": tasks.ADDING_BASELINE_MSE, "seconds": h.seconds,
                             "cpu_seconds": h.cpu_seconds})
    if bar is not None:
        bar.close()
    return Result("exploding", "test MSE", True, "always answer 1", s, rows, histories, flows)


# ---------------------------------------------------------------- digits

def _digits(s, seed, progress):
    rows, histories, flows = [], {}, {}
    bar = _bar(progress, s, len(s.cells) * len(s.T))
    for T in s.T:
        x_train, y_train, x_test, y_test = tasks.load_digits_sequences(T, seed)
        baseline = tasks.majority_baseline(y_train, y_test)
        N = len(y_train)
        for cell in s.cells:
            model = Model(cell, x_train.shape[2], s.hidden, 10, seed=[seed, 0])
            rng = np.random.default_rng([seed, T, 2])

            def batch():
                pick = rng.integers(0, N, s.batch)
                return x_train[:, pick], y_train[pick]

            def evaluate(m):
                out = m.forward(x_test)
                W, b = m.head
                loss, _ = fastbptt.softmax_cross_entropy(out[-1], W, b, y_test,
                                                         compute_grad=False)
                accuracy = np.mean(np.argmax(out[-1] @ W.T + b, axis=1) == y_test)
                return {"test loss": float(loss), "test accuracy": float(accuracy)}

            flow = _last_step_flow(fastbptt.softmax_cross_entropy,
                                   x_test[:, :s.flow_batch], y_test[:s.flow_batch])
            start = flow(model)
            if bar is not None:
                bar.set_description(f"digits T={T} {model.name}")
            h = train(model, batch, _last_step_loss(fastbptt.softmax_cross_entropy), s.steps,
                      fastbptt.Adam(model.params, lr=s.lr), clip=s.clip, evaluate=evaluate,
                      progress=bar)
            flows[cell, T] = {"start": start, "end": flow(model)}
            histories[cell, T] = h
            final = h.evals[-1]["test accuracy"]
            rows.append({"cell": cell, "T": T, "test accuracy": final, "baseline": baseline,
                         "ratio": final / baseline, "seconds": h.seconds,
                         "cpu_seconds": h.cpu_seconds})
    if bar is not None:
        bar.close()
    return Result("digits", "test accuracy", False, "majority class", s, rows, histories,
                  flows)


_RUNNERS = {"adding": _adding, "copy": _copy, "exploding": _exploding, "digits": _digits}
