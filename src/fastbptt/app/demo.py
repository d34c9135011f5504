"""`fastbptt demo`: train a character-level language model end to end, and watch it learn.

The text is cut into B parallel streams; each training step takes the next `seq_len`
characters of every stream (truncated BPTT with k1 = k2 = seq_len, the hidden state carried
across steps and reset at the start of each pass over the text), runs the recurrent layers
and the fused softmax cross-entropy head forward and backward, clips the gradient's global
norm and takes an Adam step. The last tenth of the text is held out and never trained on.

The run cannot be lost (fastbptt.training.checkpoint, docs/guide/training.md): the
checkpoint path is checked before the first step, saved atomically every
checkpoint_every steps, on Ctrl-C and at the end, and `resume` continues it bit for bit.
Memory does not grow with the text beyond its 1-4 bytes a character: a step one-hots only
its window, and the final losses stream over at most eval_chars characters in chunks.

The baseline printed first is the unigram entropy: the loss (nats/char) of predicting every
character from the text's character frequencies alone. A model that learned nothing about
context cannot beat it; the demo ends well below it.
"""
import dataclasses
import math
import time
import zlib

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from fastbptt.app.charlm import CharLM, count_entropy
from fastbptt.app.corpus import load_corpus
from fastbptt.runtime.launch import launched_world
from fastbptt.training.checkpoint import (
    CheckpointError,
    RunKeeper,
    TrainingDiverged,
    TrainingInterrupted,
    check_output_dir,
    checkpoint_path,
    load_arrays,
    read_meta,
    require,
)
from fastbptt.training.optim import Adam, clip_grad_norm
from fastbptt.training.tbptt import TruncatedBPTT

VALID_FRACTION = 0.1
# A loss this many times the uniform guess's, log V, is a diverged run, not a slow one.
DIVERGED_FACTOR = 10
# The settings a resumed run takes from its checkpoint: changing any of them would make
# the continued run a different one (every other option may change on --resume).
RUN_SETTINGS = ("cell", "hidden", "layers", "seq_len", "batch", "lr", "clip", "backend",
                "dtype", "text", "seed")


@dataclasses.dataclass
class DemoOptions:
    """The demo's settings; the defaults finish in about a minute on two cores."""
    cell: str = "lstm"
    hidden: int = 128
    layers: int = 1
    seq_len: int = 64
    batch: int = 32
    steps: int = 1000
    lr: float = 3e-3
    clip: float = 5.0
    backend: str = "compiled"
    dtype: str = "float32"
    threads: int = None       # BLAS threads; None: the BLAS default (all cores), 1.35x
                              # faster than one thread at the defaults on a quiet machine
    text: str = None          # path of a text file; None: the embedded corpus
    seed: int = 0
    sample_every: int = None  # steps between samples; None: four times in the run
    sample_length: int = 200
    temperature: float = 0.8
    checkpoint: str = "fastbptt-demo.npz"   # None: do not save; ".npz" appended if missing
    checkpoint_every: int = 100   # steps between checkpoints; None or 0: at the end only
    force: bool = False       # overwrite an existing checkpoint file
    resume: str = None        # continue the run saved in this checkpoint
    eval_chars: int = 1_000_000   # characters of each text the final losses read; 0: all
    plot: str = None          # PNG path for the loss curve and the gradient-flow profile


def read_text(path):
    """The training text: a UTF-8 file, or the embedded corpus when path is None."""
    if path is None:
        return load_corpus()
    with open(path, encoding="utf-8") as f:
        return f.read()


def split_streams(indices, batch, seq_len, unit="characters"):
    """Cut indices into `batch` streams side by side: inputs (T, B) and next-character
    (next-`unit`) targets (T, B), T the stream length; views of indices, not copies.
    ValueError when a stream would be shorter than one training step."""
    T = (len(indices) - 1) // batch
    if T < seq_len:
        raise ValueError(f"the text has {len(indices)} {unit}: too short for "
                         f"batch={batch} streams of at least seq_len={seq_len} steps")
    inputs = indices[:T * batch].reshape(batch, T).T
    targets = indices[1:T * batch + 1].reshape(batch, T).T
    return inputs, targets


def index_dtype(V):
    """The narrowest unsigned integer type that holds indices < V: the text's encoding
    costs 1 byte a character for up to 256 distinct characters."""
    return np.uint8 if V <= 1 << 8 else np.uint16 if V <= 1 << 16 else np.uint32


def check_plot(path):
    """Before training: matplotlib importable and the PNG's directory writable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError('--plot needs matplotlib: pip install "fastbptt[plot]"') from None
    check_output_dir(path, "--plot")


def run(options, out=print):
    """Train as `options` say, printing progress through `out`; return a summary dict.
    Launched as several MPI ranks (mpiexec, srun), they train together on the --batch
    streams (fastbptt.distributed.demo). Raises TrainingInterrupted after a Ctrl-C
    (the checkpoint saved), TrainingDiverged on a non-finite or exploding loss."""
    rank, size = launched_world()
    if size > 1:
        if options.resume:
            raise ValueError("--resume is not supported under MPI: each rank's carried "
                             "state would be lost; resume on one process")
        from fastbptt.distributed.demo import run_distributed  # needs mpi4py
        return run_distributed(options, out, _threads_and_run, rank, size)
    return _threads_and_run(options, out)


def _threads_and_run(options, out, dist=None):
    with threadpool_limits(limits=options.threads):
        return _run(options, out, dist)


def resumed_options(o, meta, path, settings=RUN_SETTINGS):
    """o with the run settings and, when o.steps is None, the step target of the run
    saved in a checkpoint's metadata."""
    require(path, meta, "run")
    run = meta["run"]
    require(path, run, *settings, "steps")
    settings = {name: run[name] for name in settings}
    if o.steps is None:
        settings["steps"] = run["steps"]
    return dataclasses.replace(o, **settings)


def resume_conflicts(path, given):
    """The names in `given` {setting: value} (settings from RUN_SETTINGS a user set)
    whose value differs from the one the run in checkpoint `path` was saved with."""
    arrays = load_arrays(path)
    meta = read_meta(path, arrays)
    require(path, meta, "run")
    return [name for name, value in given.items() if meta["run"].get(name) != value]


def _run(o, out, dist=None):
    talks = not dist or dist.is_root     # the rank that prints, samples and saves
    resumed = None
    if o.resume:
        resumed = CharLM.load_arrays(o.resume, o.backend)
        o = resumed_options(o, resumed[1], o.resume)
    elif o.steps is None:
        o = dataclasses.replace(o, steps=DemoOptions.steps)
    # Everything that can fail after training is checked before it starts.
    ckpt = (checkpoint_path(o.checkpoint, force=o.force, resuming=o.resume)
            if o.checkpoint and talks else None)
    if o.plot and talks:
        check_plot(o.plot)

    text = read_text(o.text)
    vocab = "".join(sorted(set(text)))
    if resumed and resumed[0].vocab != vocab:
        raise CheckpointError(f"{o.resume}: its run trained on a text with other characters "
                              f"than {o.text or 'the embedded corpus'} has now")
    model = CharLM(vocab, cell=o.cell, hidden_size=o.hidden, num_layers=o.layers,
                   dtype=o.dtype, seed=o.seed, backend=o.backend)
    ix = model.encode(text, index_dtype(len(vocab)))    # the text, 1-4 bytes a character
    cut = int(len(text) * (1 - VALID_FRACTION))
    n_chars = len(text)
    del text                                            # the indices are all we need now
    train_ix, valid_ix = ix[:cut], ix[cut:]
    text_crc = zlib.crc32(ix)
    inputs, targets = split_streams(train_ix, o.batch, o.seq_len)   # views
    if dist:
        inputs, targets = dist.shard(inputs, targets)   # this rank's streams
    baseline = count_entropy(_counts(ix, len(vocab)))
    sample_every = o.sample_every or max(1, math.ceil(o.steps / 4))

    out(f"fastbptt demo: {o.cell.upper()} character model, {o.layers} x {o.hidden} hidden, "
        f"{len(vocab)} characters, {o.backend} kernels, {o.dtype}, BLAS on "
        f"{'all cores' if o.threads is None else f'{o.threads} thread(s)'}")
    out(f"text: {cut:,} training + {n_chars - cut:,} held-out characters "
        f"({'embedded corpus' if o.text is None else o.text})")
    out(f"unigram baseline: {baseline:.3f} nats/char ({baseline / math.log(2):.3f} bits): "
        f"the loss of guessing from character frequencies alone")
    if dist:
        out(dist.describe())

    optimizer = Adam(model.params, lr=o.lr)
    if dist:
        optimizer = dist.wrap(optimizer, o.clip)
    tbptt, keeper, progress = start_run(o, model, optimizer, ckpt, resumed, text_crc, out)
    limit = DIVERGED_FACTOR * math.log(len(vocab))

    def train_window(step, start, stop):
        window_targets = np.ascontiguousarray(targets[start:stop], np.intp)
        (window,) = tbptt.run(  # one window: x holds just its steps
            model.one_hot(inputs[start:stop]),
            lambda output, lo, hi: model.head_loss(output, window_targets))
        if dist:
            with keeper.updating():
                loss = dist.step(optimizer, window)
            check_diverged(loss, 0.0, limit, step, o, None)
        else:
            loss = window.loss
            norm = clip_grad_norm(window.grads, o.clip)
            check_diverged(loss, norm, limit, step, o, ckpt)   # before the update
            with keeper.updating():
                optimizer.step(window.grads)
        return loss

    def after_step(step, loss, bar):
        if talks and ((step + 1) % sample_every == 0 or step + 1 == o.steps):
            # seeded by (seed, step): a resumed run prints the samples the
            # uninterrupted one would, and there is no RNG state to save
            text_out = model.sample(o.sample_length, o.temperature, rng=(o.seed, step + 1))
            bar.write(f"\n--- sample at step {step + 1} (loss {loss:.3f}) ---\n{text_out}\n")

    train_windows(o, tbptt, keeper, progress, inputs.shape[0], train_window, after_step,
                  "chars", talks)
    step, history = keeper.step, keeper.history
    trained_chars, elapsed = progress.items, progress.elapsed

    if ckpt and resumed and step <= resumed[1]["step"]:
        out(f"the checkpoint is at step {step}, --steps {o.steps}: nothing to train")
    try:
        train_loss = model.evaluate(_head(train_ix, o.eval_chars), o.batch)
        valid_ix = _head(valid_ix, o.eval_chars)
        valid_loss = model.evaluate(valid_ix,
                                    min(o.batch, max(1, (len(valid_ix) - 1) // o.seq_len)))
    except KeyboardInterrupt:
        raise TrainingInterrupted(step, ckpt) from None
    summary = {"steps": step, "chars_per_s": trained_chars / elapsed if elapsed else 0.0,
               "train_seconds": elapsed, "baseline": baseline, "train_loss": train_loss,
               "valid_loss": valid_loss, "history": history}
    out(f"trained {step} steps in {elapsed:.1f} s ({summary['chars_per_s']:,.0f} chars/s)")
    read = (f" (the first {o.eval_chars:,} characters of each)"
            if o.eval_chars and cut > o.eval_chars else "")
    out(f"loss: {train_loss:.3f} nats/char on the training text, {valid_loss:.3f} held "
        f"out{read}; unigram baseline {baseline:.3f}")
    if valid_loss < baseline:
        out(f"held-out loss is {baseline - valid_loss:.3f} nats/char below the unigram baseline "
            f"({100 * (1 - valid_loss / baseline):.0f}% lower)")
    else:
        out(f"held-out loss is NOT below the unigram baseline ({valid_loss - baseline:.3f} "
            f"nats/char above it): {advice(history)}")
    if ckpt:
        keeper.save(train_loss=train_loss, valid_loss=valid_loss)
        out(f"checkpoint: {ckpt} (fastbptt sample {ckpt} --length 300; continue training: "
            f"fastbptt demo --resume {ckpt} --steps {2 * o.steps})")
    if o.plot and talks:
        _plot(o.plot, model, history, inputs, targets, o, baseline)
        out(f"plot: {o.plot}")
    return summary


def _counts(indices, V, chunk=1 << 20):
    """np.bincount(indices, minlength=V) a chunk at a time: bincount converts its input
    to intp, 8 bytes a character, which for a long text would cost more than the text."""
    counts = np.zeros(V, np.int64)
    for lo in range(0, len(indices), chunk):
        counts += np.bincount(indices[lo:lo + chunk], minlength=V)
    return counts


def _head(indices, chars):
    """The first `chars` + 1 indices (chars predictions), or all of them when chars is 0."""
    return indices[:chars + 1] if chars else indices


def advice(history):
    """What to change when the held-out loss did not beat the baseline: a loss that rose
    over training means too large a step, one that fell means too short a run."""
    losses = [loss for _, loss in history]
    k = max(1, len(losses) // 10)
    if len(losses) >= 2 and np.mean(losses[-k:]) > np.mean(losses[:k]):
        return "the training loss rose: lower --lr"
    return "train longer (--steps) or with a higher --lr"


def check_diverged(loss, norm, limit, step, o, ckpt, unit="nats/char"):
    """TrainingDiverged when the loss or the gradient norm is not finite, or the loss is
    over `limit`; raised before the update, so the parameters are those of `step`."""
    if math.isfinite(loss) and math.isfinite(norm) and loss <= limit:
        return
    what = (f"the loss is {loss:.3g} {unit}" if math.isfinite(loss) and loss > limit
            else "the loss or the gradient is not finite")
    kept = f"; the last checkpoint in {ckpt} is from before" if ckpt else ""
    raise TrainingDiverged(
        f"training diverged at step {step + 1}: {what}. The learning rate is too high: "
        f"lower --lr (now {o.lr:g}; try {o.lr / 10:g}) or --clip (now {o.clip:g}){kept}")


@dataclasses.dataclass
class Progress:
    """What a run has trained so far: saved in its checkpoints, restored on resume."""
    items: int = 0           # characters (words) trained on, over all the streams
    elapsed: float = 0.0     # seconds spent in training steps


def start_run(o, model, optimizer, ckpt, resumed, text_crc, out, settings=RUN_SETTINGS):
    """A run's truncated BPTT, its RunKeeper (checkpoints to ckpt, with the run's
    `settings` and Progress in their metadata) and its Progress; with `resumed` (what
    o.resume's checkpoint loaded), all three continue that run."""
    tbptt = TruncatedBPTT(model.layer, o.seq_len)
    progress = Progress()

    def meta():
        return dict(model.config(), run=dict(
            {name: getattr(o, name) for name in settings}, steps=o.steps,
            trained_chars=progress.items, elapsed=progress.elapsed, text_crc32=text_crc))

    keeper = RunKeeper(ckpt, model.params, optimizer, model.layer, meta, o.checkpoint_every)
    if resumed:
        progress.items, progress.elapsed = restore(o.resume, resumed, model, keeper, text_crc)
        tbptt.state = keeper.state
        out(f"resumed {o.resume} at step {keeper.step} of {o.steps}"
            + (f"; checkpoints go to {ckpt}" if ckpt else ""))
    return tbptt, keeper, progress


def train_windows(o, tbptt, keeper, progress, T, train_window, after_step, unit,
                  talks=True):
    """Train until keeper.step reaches o.steps, a window of o.seq_len steps of every
    stream (T steps long) a step, with a progress bar (shown when `talks`).

    The windows of one pass over the streams: [0, k), [k, 2k), ..., the last shorter;
    each pass starts from zero state, so a step's window is step % windows.
    train_window(step, start, stop) -> loss runs the window [start, stop) forward and
    backward and updates the parameters (inside keeper.updating()); after_step(step,
    loss, bar) writes what follows a step (a sample) through bar.write. progress counts
    the `unit`s (per stream step, times o.batch) and the seconds of the steps."""
    windows = math.ceil(T / o.seq_len)
    bar = tqdm(total=o.steps, initial=min(keeper.step, o.steps), unit="step",
               dynamic_ncols=True, mininterval=0.5, disable=not talks)
    try:
        with keeper.guard():
            while keeper.step < o.steps:
                step = keeper.step
                t0 = time.perf_counter()
                start = (step % windows) * o.seq_len
                if start == 0:
                    tbptt.reset()
                stop = min(start + o.seq_len, T)
                loss = train_window(step, start, stop)
                progress.elapsed += time.perf_counter() - t0
                progress.items += (stop - start) * o.batch
                keeper.completed(tbptt.state, loss)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False, **{
                    f"{unit}_per_s": f"{progress.items / progress.elapsed:,.0f}"})
                bar.update()
                after_step(step, loss, bar)
                keeper.checkpoint(last=keeper.step == o.steps)
    finally:
        bar.close()


def restore(path, resumed, model, keeper, text_crc):
    """Put a checkpoint's run (`resumed`: model, meta, arrays) into the fresh model and
    the keeper (its optimizer, carried state, step and history); returns the trained
    characters (or words) and training seconds it had reached."""
    _, meta, arrays = resumed
    if meta["run"].get("text_crc32") != text_crc:
        raise CheckpointError(f"{path}: its run trained on another text (the characters "
                              f"differ): resume with the same --text")
    for key, value in resumed[0].params.items():   # the checkpoint's parameters
        model.params[key][...] = value
    keeper.restore(path, arrays)
    return int(meta["run"]["trained_chars"]), float(meta["run"]["elapsed"])


def _plot(path, model, history, inputs, targets, o, baseline):
    """The loss curve beside the gradient-flow profile of the first training window:
    ||dL/dh_t|| and ||dh_T/dh_t|| per step, how far back in the window gradients reach."""
    from fastbptt.training.diagnostics import gradient_flow, plot_gradient_flow
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display
    except ImportError:
        raise ImportError('--plot needs matplotlib: pip install "fastbptt[plot]"') from None
    window_x = model.one_hot(inputs[:o.seq_len])
    output, _ = model.layer.forward(window_x)
    _, d_output, _ = model.head_loss(output, np.ascontiguousarray(targets[:o.seq_len], np.intp))
    flow = gradient_flow(model.layer, window_x, d_output)

    fig = Figure(figsize=(15, 4), layout="constrained")
    ax_loss, *ax_flow = fig.subplots(1, 3)
    steps, loss = np.array(history).T
    ax_loss.plot(steps, loss, lw=0.8, label="training loss")
    ax_loss.axhline(baseline, color="k", ls="--", lw=0.8, label="unigram baseline")
    ax_loss.set(xlabel="step", ylabel="cross-entropy (nats/char)", title="Loss")
    ax_loss.legend()
    plot_gradient_flow(flow, ax=ax_flow)
    fig.savefig(path, dpi=100)
