"""`fastbptt demo`: train a character-level language model end to end, and watch it learn.

The text is cut into B parallel streams; each training step takes the next `seq_len`
characters of every stream (truncated BPTT with k1 = k2 = seq_len, the hidden state carried
across steps and reset at the start of each pass over the text), runs the recurrent layers
and the fused softmax cross-entropy head forward and backward, clips the gradient's global
norm and takes an Adam step. The last tenth of the text is held out and never trained on.

The baseline printed first is the unigram entropy: the loss (nats/char) of predicting every
character from the text's character frequencies alone. A model that learned nothing about
context cannot beat it; the demo ends well below it.
"""
import dataclasses
import math
import time

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from fastbptt.app.charlm import CharLM, unigram_entropy
from fastbptt.app.corpus import load_corpus
from fastbptt.runtime.launch import launched_world
from fastbptt.training.optim import Adam, clip_grad_norm
from fastbptt.training.tbptt import TruncatedBPTT

VALID_FRACTION = 0.1


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
    checkpoint: str = "fastbptt-demo.npz"   # None: do not save
    plot: str = None          # PNG path for the loss curve and the gradient-flow profile


def read_text(path):
    """The training text: a UTF-8 file, or the embedded corpus when path is None."""
    if path is None:
        return load_corpus()
    with open(path, encoding="utf-8") as f:
        return f.read()


def split_streams(indices, batch, seq_len, unit="characters"):
    """Cut indices into `batch` streams side by side: inputs (T, B) and next-character
    (next-`unit`) targets (T, B), T the stream length. ValueError when a stream would be
    shorter than one training step."""
    T = (len(indices) - 1) // batch
    if T < seq_len:
        raise ValueError(f"the text has {len(indices)} {unit}: too short for "
                         f"batch={batch} streams of at least seq_len={seq_len} steps")
    inputs = indices[:T * batch].reshape(batch, T).T
    targets = indices[1:T * batch + 1].reshape(batch, T).T
    return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)


def run(options, out=print):
    """Train as `options` say, printing progress through `out`; return a summary dict.
    Launched as several MPI ranks (mpiexec, srun), they train together on the --batch
    streams (fastbptt.distributed.demo)."""
    rank, size = launched_world()
    if size > 1:
        from fastbptt.distributed.demo import run_distributed  # needs mpi4py
        return run_distributed(options, out, _threads_and_run, rank, size)
    return _threads_and_run(options, out)


def _threads_and_run(options, out, dist=None):
    with threadpool_limits(limits=options.threads):
        return _run(options, out, dist)


def _run(o, out, dist=None):
    text = read_text(o.text)
    vocab = "".join(sorted(set(text)))
    cut = int(len(text) * (1 - VALID_FRACTION))
    train_text, valid_text = text[:cut], text[cut:]
    model = CharLM(vocab, cell=o.cell, hidden_size=o.hidden, num_layers=o.layers,
                   dtype=o.dtype, seed=o.seed, backend=o.backend)
    train_ix, valid_ix = model.encode(train_text), model.encode(valid_text)
    inputs, targets = split_streams(train_ix, o.batch, o.seq_len)
    if dist:
        inputs, targets = dist.shard(inputs, targets)   # this rank's streams
    x = model.one_hot(inputs)                       # (T, B, V), a few MB for the corpus
    baseline = unigram_entropy(text)
    sample_every = o.sample_every or max(1, math.ceil(o.steps / 4))

    out(f"fastbptt demo: {o.cell.upper()} character model, {o.layers} x {o.hidden} hidden, "
        f"{len(vocab)} characters, {o.backend} kernels, {o.dtype}, BLAS on "
        f"{'all cores' if o.threads is None else f'{o.threads} thread(s)'}")
    out(f"text: {len(train_text):,} training + {len(valid_text):,} held-out characters "
        f"({'embedded corpus' if o.text is None else o.text})")
    out(f"unigram baseline: {baseline:.3f} nats/char ({baseline / math.log(2):.3f} bits): "
        f"the loss of guessing from character frequencies alone")
    if dist:
        out(dist.describe())

    optimizer = Adam(model.params, lr=o.lr)
    if dist:
        optimizer = dist.wrap(optimizer, o.clip)
    tbptt = TruncatedBPTT(model.layer, o.seq_len)
    rng = np.random.default_rng(o.seed)
    history = []            # (step, training loss of that step)
    step, trained_chars, elapsed = 0, 0, 0.0

    def loss_fn(output, start, stop):
        loss, d_output, head_grads = model.head_loss(output, targets[start:stop])
        return loss, d_output, head_grads

    bar = tqdm(total=o.steps, unit="step", dynamic_ncols=True, mininterval=0.5,
               disable=bool(dist) and not dist.is_root)
    while step < o.steps:
        tbptt.reset()       # each pass over the text starts from zero state
        windows = tbptt.run(x, loss_fn)
        while step < o.steps:
            t0 = time.perf_counter()
            window = next(windows, None)
            if window is None:
                break
            if dist:
                window = dataclasses.replace(window, loss=dist.step(optimizer, window))
            else:
                clip_grad_norm(window.grads, o.clip)
                optimizer.step(window.grads)
            elapsed += time.perf_counter() - t0
            step += 1
            trained_chars += (window.stop - window.loss_start) * o.batch
            history.append((step, window.loss))
            bar.set_postfix(loss=f"{window.loss:.3f}",
                            chars_per_s=f"{trained_chars / elapsed:,.0f}", refresh=False)
            bar.update()
            if (step % sample_every == 0 or step == o.steps) and (not dist or dist.is_root):
                text_out = model.sample(o.sample_length, o.temperature, rng=rng)
                bar.write(f"\n--- sample at step {step} (loss {window.loss:.3f}) ---\n"
                          f"{text_out}\n")
        windows.close()
    bar.close()

    train_loss = model.evaluate(train_ix, o.batch)
    valid_loss = model.evaluate(valid_ix, min(o.batch, max(1, (len(valid_ix) - 1) // o.seq_len)))
    summary = {"steps": step, "chars_per_s": trained_chars / elapsed if elapsed else 0.0,
               "train_seconds": elapsed, "baseline": baseline, "train_loss": train_loss,
               "valid_loss": valid_loss, "history": history}
    out(f"trained {step} steps in {elapsed:.1f} s ({summary['chars_per_s']:,.0f} chars/s)")
    out(f"loss: {train_loss:.3f} nats/char on the training text, {valid_loss:.3f} held out; "
        f"unigram baseline {baseline:.3f}")
    if valid_loss < baseline:
        out(f"held-out loss is {baseline - valid_loss:.3f} nats/char below the unigram baseline "
            f"({100 * (1 - valid_loss / baseline):.0f}% lower)")
    else:
        out(f"held-out loss is NOT below the unigram baseline ({valid_loss - baseline:.3f} "
            f"nats/char above it): train longer (--steps) or with a higher --lr")
    if o.checkpoint and (not dist or dist.is_root):
        model.save(o.checkpoint, step=step, train_loss=train_loss, valid_loss=valid_loss)
        out(f"checkpoint: {o.checkpoint} (fastbptt sample {o.checkpoint} --length 300)")
    if o.plot and (not dist or dist.is_root):
        _plot(o.plot, model, history, x, targets, o, baseline)
        out(f"plot: {o.plot}")
    return summary


def _plot(path, model, history, x, targets, o, baseline):
    """The loss curve beside the gradient-flow profile of the first training window:
    ||dL/dh_t|| and ||dh_T/dh_t|| per step, how far back in the window gradients reach."""
    from fastbptt.training.diagnostics import gradient_flow, plot_gradient_flow
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display
    except ImportError:
        raise ImportError('--plot needs matplotlib: pip install "fastbptt[plot]"') from None
    window_x = x[:o.seq_len]
    output, _ = model.layer.forward(window_x)
    _, d_output, _ = model.head_loss(output, targets[:o.seq_len])
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
