"""`fastbptt demo --level word`: a word-level recurrent language model, trained end to end.

The model of the textbook: word embeddings in, recurrent layers, a distribution over the
vocabulary at every step out. Shapes: V words in the vocabulary, E the embedding size, H
hidden units, T steps, B streams.

    tokens   (T, B)      word indices
    x        (T, B, E)   = embedding.weight[tokens]            (fastbptt.Embedding)
    output   (T, B, H)   the top layer's hidden states           (fastbptt.LSTM, RNN, GRU)
    logits   (T, B, V)   = output @ W^T + b, fused into the loss  (softmax_cross_entropy)

With tied=True (Press and Wolf 2017; the PyTorch word-language-model example's --tied)
the head's W is the embedding matrix itself (so E = H) and its gradient is the head's
plus the lookup's: embedding.backward(dx, add_to=g.dW).

The text: lower-cased and cut into words, numbers and single punctuation marks
(tokenize); words seen fewer than min_count times in the training text become "<unk>".
The last tenth is held out. Training is truncated BPTT over B parallel streams of tokens
(the state carried from one window to the next), Adam and gradient clipping, as in the
character demo. The baseline is the unigram model of the training text (add-one
smoothed), scored on the held-out text: the perplexity of guessing every word from its
frequency alone.
"""
import collections
import dataclasses
import math
import re
import zlib

import numpy as np
from threadpoolctl import threadpool_limits

from fastbptt import (
    Adam,
    Embedding,
    clip_grad_norm,
    reference,
    softmax_cross_entropy,
)
from fastbptt.app import demo
from fastbptt.app.charlm import check_sampling
from fastbptt.app.corpus import load_corpus
from fastbptt.nn.layers import LAYERS  # cell name -> layer class, from each CellSpec
from fastbptt.training.checkpoint import (
    CheckpointError,
    TrainingInterrupted,
    checkpoint_path,
    load_arrays,
    load_params_into,
    read_meta,
    require,
    run_arrays,
    save_atomic,
)

UNK = "<unk>"
VALID_FRACTION = 0.1
_FORMAT = "fastbptt-wordlm-1"
_EVAL_BYTES = 1 << 24        # inputs and activations per evaluation chunk: 16 MiB
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def tokenize(text):
    """Lower-cased words (with an inner apostrophe: "don't"), numbers and single
    punctuation marks, in order; whitespace separates and is dropped."""
    return _TOKEN.findall(text.lower())


def build_vocab(tokens, min_count=2):
    """["<unk>", then every token seen at least min_count times, most frequent first
    (ties alphabetically)]."""
    counts = collections.Counter(tokens)
    kept = sorted((w for w, n in counts.items() if n >= min_count and w != UNK),
                  key=lambda w: (-counts[w], w))
    return [UNK] + kept


def detokenize(words):
    """Words joined by spaces, without a space before punctuation."""
    text = ""
    for w in words:
        glue = not text or (len(w) == 1 and not w.isalnum() and w not in "\"(")
        text += w if glue else " " + w
    return text


def unigram_perplexity(train_ix, valid_ix, V):
    """exp of the held-out cross-entropy of the add-one-smoothed unigram model of the
    training indices: the baseline a language model must beat."""
    counts = np.bincount(train_ix, minlength=V) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[valid_ix].mean()))


class WordLM:
    """Vocabulary, embedding, recurrent layers and output head of a word language model.

    `params` is one flat dict: "embedding.weight" (V, E), the layer's torch keys
    ("weight_ih_l0", ...), "head.bias" (V,) and, untied, "head.weight" (V, H); the same
    arrays as the parts hold, so an optimizer over params trains the model.
    """

    def __init__(self, vocab, cell="lstm", hidden_size=128, num_layers=1, embedding_dim=None,
                 tied=False, dtype=np.float32, seed=0, backend="compiled"):
        if cell not in LAYERS:
            raise ValueError(f"cell must be one of {', '.join(LAYERS)}, got {cell!r}")
        vocab = list(vocab)
        if len(vocab) < 2 or len(set(vocab)) != len(vocab) or vocab[0] != UNK:
            raise ValueError(f"vocab must be at least 2 distinct words, {UNK!r} first")
        if embedding_dim is None:
            embedding_dim = hidden_size
        if tied and embedding_dim != hidden_size:
            raise ValueError(f"tied weights need embedding_dim == hidden_size (the head's W "
                             f"is the embedding matrix), got {embedding_dim} and {hidden_size}")
        self.vocab, self.index = vocab, {w: i for i, w in enumerate(vocab)}
        self.cell, self.tied, self.dtype = cell, bool(tied), np.dtype(dtype)
        rng = np.random.default_rng(seed)
        V = len(vocab)
        self.embedding = Embedding(V, embedding_dim, dtype=self.dtype, seed=rng,
                                   backend=backend)
        self.layer = LAYERS[cell](embedding_dim, hidden_size, num_layers=num_layers,
                                  dtype=self.dtype, seed=rng, backend=backend)
        # The PyTorch word-language-model example's init, U(-0.1, 0.1), not
        # nn.Embedding's N(0, 1): tied, these rows are also the head's, and rows of norm
        # sqrt(E) would start it with logits in the tens (a confident, wrong softmax).
        self.embedding.weight[...] = rng.uniform(-0.1, 0.1, self.embedding.weight.shape)
        bound = 1.0 / np.sqrt(hidden_size)   # torch.nn.Linear's default init
        self.params = {"embedding.weight": self.embedding.weight, **self.layer.params}
        if not self.tied:
            self.params["head.weight"] = rng.uniform(-bound, bound,
                                                     (V, hidden_size)).astype(self.dtype)
        self.params["head.bias"] = rng.uniform(-bound, bound, V).astype(self.dtype)
        self._loss = (softmax_cross_entropy if backend == "compiled"
                      else reference.softmax_cross_entropy)

    @property
    def head_weight(self):
        return self.params["embedding.weight" if self.tied else "head.weight"]

    def config(self):
        return {"format": _FORMAT, "vocab": self.vocab, "cell": self.cell,
                "hidden_size": self.layer.hidden_size, "num_layers": self.layer.num_layers,
                "embedding_dim": self.embedding.embedding_dim, "tied": self.tied,
                "dtype": self.dtype.name}

    def encode(self, tokens):
        """Word indices (len(tokens),) int64, unknown words as <unk> (index 0)."""
        return np.fromiter((self.index.get(w, 0) for w in tokens), np.int64, len(tokens))

    # ------------------------------------------------------------ training pieces

    def step(self, inputs, targets, tbptt):
        """One truncated-BPTT window over inputs/targets (T, B), the state carried by
        tbptt; returns (mean loss in nats/word, grads keyed like params)."""
        x = self.embedding.forward(inputs)                       # (T, B, E)
        head = {}

        def loss_fn(output, start, stop):
            loss, g = self._loss(output, self.head_weight, self.params["head.bias"],
                                 targets[start:stop])
            head["dW"] = g.dW
            return loss, g.dh, {"head.bias": g.db}

        (window,) = tbptt.run(x, loss_fn)
        grads = window.grads
        if self.tied:   # the tied weight's gradient: the head's plus the lookup's
            grads["embedding.weight"] = self.embedding.backward(
                window.dx, add_to=head["dW"])["weight"]
        else:
            grads["head.weight"] = head["dW"]
            grads["embedding.weight"] = self.embedding.backward(window.dx)["weight"]
        return window.loss, grads

    def evaluate(self, indices, batch):
        """Mean cross-entropy (nats/word) of predicting indices[1:] from indices[:-1], cut
        into `batch` streams run from zero state, in chunks of steps with the state
        carried (as CharLM.evaluate: memory of one chunk, not of the text; the head's
        logits (chunk, B, V) are the largest part with a large vocabulary)."""
        T = (len(indices) - 1) // batch
        if T < 1:
            raise ValueError(f"text too short to evaluate with batch={batch}")
        inputs = indices[:T * batch].reshape(batch, T).T             # (T, B), views
        targets = indices[1:T * batch + 1].reshape(batch, T).T
        per_step = batch * (len(self.vocab) + self.embedding.embedding_dim
                            + 8 * self.layer.hidden_size * self.layer.num_layers)
        chunk = max(1, _EVAL_BYTES // (per_step * self.dtype.itemsize))
        state, total = None, 0.0
        for start in range(0, T, chunk):
            stop = min(start + chunk, T)
            output, state = self.layer.forward(self.embedding.forward(inputs[start:stop]),
                                               state)
            loss, _ = self._loss(output, self.head_weight, self.params["head.bias"],
                                 np.ascontiguousarray(targets[start:stop]),
                                 compute_grad=False)
            total += float(loss) * (stop - start)
        return total / T

    # ------------------------------------------------------------ generation

    def sample(self, length, temperature=1.0, prime="", rng=None):
        """`length` generated words as text: the continuation of `prime` (tokenized;
        unknown words read as <unk>), or of a random word when prime is empty. <unk> is
        never generated. With a prime, the text starts with a space (prime + text reads
        on)."""
        check_sampling(length, temperature)
        rng = np.random.default_rng(rng)
        V = len(self.vocab)
        generated = []
        context = self.encode(tokenize(prime))
        if not len(context):
            if length == 0:
                return ""
            context = rng.integers(1, V, size=1)
            generated.append(int(context[0]))
        W, b = self.head_weight, self.params["head.bias"]
        output, state = self.layer.forward(self.embedding.forward(context[:, None]))
        while len(generated) < length:
            logits = (output[-1, 0] @ W.T + b).astype(np.float64) / temperature
            logits[0] = -np.inf                                   # never <unk>
            p = np.exp(logits - logits.max())
            ix = int(rng.choice(V, p=p / p.sum()))
            generated.append(ix)
            output, state = self.layer.forward(self.embedding.forward([[ix]]), state)
        text = detokenize([self.vocab[i] for i in generated])
        return (" " + text) if prime and text and text[0].isalnum() else text

    # ------------------------------------------------------------ checkpoints

    def save(self, path, **extra):
        """Parameters and configuration to a .npz (no pickles), atomically; extra: JSON
        facts."""
        meta = dict(self.config(), **extra)
        save_atomic(path, run_arrays(meta, self.params))

    @classmethod
    def load(cls, path, backend="compiled"):
        """A model from a file written by save(); returns (model, meta dict).
        CheckpointError (a ValueError) naming the file for anything else."""
        model, meta, _ = cls.load_arrays(path, backend)
        return model, meta

    @classmethod
    def load_arrays(cls, path, backend="compiled", arrays=None):
        """load(), also returning every array the file holds (for --resume)."""
        arrays = load_arrays(path) if arrays is None else arrays
        meta = read_meta(path, arrays)
        if meta.get("format") != _FORMAT:
            raise CheckpointError(f"{path}: not a word-model checkpoint "
                                  f"(format {meta.get('format')!r})")
        require(path, meta, "vocab", "cell", "hidden_size", "num_layers", "embedding_dim",
                "tied", "dtype")
        model = cls(meta["vocab"], cell=meta["cell"], hidden_size=meta["hidden_size"],
                    num_layers=meta["num_layers"], embedding_dim=meta["embedding_dim"],
                    tied=meta["tied"], dtype=meta["dtype"], backend=backend)
        load_params_into(path, model.params, arrays)   # in place: the parts share them
        return model, meta, arrays


def load_checkpoint(path, backend="compiled"):
    """A character model (fastbptt.charlm.CharLM) or a word model (WordLM) from a
    checkpoint of `fastbptt demo`, whichever it holds; returns (model, meta).
    CheckpointError (a ValueError) naming the file when it is neither."""
    from fastbptt.app.charlm import CharLM
    arrays = load_arrays(path)
    if read_meta(path, arrays).get("format") == _FORMAT:
        return WordLM.load_arrays(path, backend, arrays)[:2]
    return CharLM.load(path, backend=backend)


# ------------------------------------------------------------------ the demo

@dataclasses.dataclass
class WordDemoOptions(demo.DemoOptions):
    """The word demo's settings: the character demo's (fastbptt.app.demo.DemoOptions) with
    word-sized defaults, and the word model's own; the defaults take well under a minute
    on two cores."""
    seq_len: int = 32
    batch: int = 16
    steps: int = 300
    sample_length: int = 30      # words
    embedding_dim: int = None   # None: the hidden size
    tied: bool = False
    min_count: int = 2


# What a resumed word run takes from its checkpoint (demo.RUN_SETTINGS and the word
# model's own); the other options may change on --resume.
RUN_SETTINGS = demo.RUN_SETTINGS + ("embedding_dim", "tied", "min_count")


def split_streams(indices, batch, seq_len):
    """inputs and next-word targets (T, B): indices cut into `batch` streams, as the
    character demo cuts its text (fastbptt.app.demo.split_streams)."""
    return demo.split_streams(indices, batch, seq_len, unit="words")


def run(options, out=print):
    """Train as `options` say, printing through `out`; return a summary dict."""
    with threadpool_limits(limits=options.threads):
        return _run(options, out)


def _run(o, out):
    resumed = None
    if o.resume:
        resumed = WordLM.load_arrays(o.resume, o.backend)
        o = demo.resumed_options(o, resumed[1], o.resume, RUN_SETTINGS)
    elif o.steps is None:
        o = dataclasses.replace(o, steps=WordDemoOptions.steps)
    ckpt = (checkpoint_path(o.checkpoint, force=o.force, resuming=o.resume)
            if o.checkpoint else None)
    if o.plot:
        demo.check_plot(o.plot)
    if o.text is None:
        text = load_corpus()
    else:
        with open(o.text, encoding="utf-8") as f:
            text = f.read()
    tokens = tokenize(text)
    del text
    cut = int(len(tokens) * (1 - VALID_FRACTION))
    train_tokens, valid_tokens = tokens[:cut], tokens[cut:]
    vocab = build_vocab(train_tokens, o.min_count)
    if len(vocab) < 2:
        raise ValueError(f"the text has no word seen {o.min_count} times: nothing to learn")
    if resumed and resumed[0].vocab != vocab:
        raise CheckpointError(f"{o.resume}: its run trained on a text with other words than "
                              f"{o.text or 'the embedded corpus'} has now")
    model = WordLM(vocab, cell=o.cell, hidden_size=o.hidden, num_layers=o.layers,
                   embedding_dim=o.embedding_dim, tied=o.tied, dtype=o.dtype, seed=o.seed,
                   backend=o.backend)
    train_ix, valid_ix = model.encode(train_tokens), model.encode(valid_tokens)
    text_crc = zlib.crc32(train_ix)
    inputs, targets = split_streams(train_ix, o.batch, o.seq_len)
    valid_batch = min(o.batch, max(1, (len(valid_ix) - 1) // o.seq_len))
    baseline = unigram_perplexity(train_ix, valid_ix, len(vocab))
    unk = float(np.mean(valid_ix == 0)) if len(valid_ix) else 0.0
    sample_every = o.sample_every or max(1, math.ceil(o.steps / 4))

    out(f"fastbptt demo: {o.cell.upper()} word model, {o.layers} x {o.hidden} hidden, "
        f"{model.embedding.embedding_dim}-d embeddings{', tied to the output' if o.tied else ''}, "
        f"{len(vocab):,} words, {o.backend} kernels, {o.dtype}, BLAS on "
        f"{'all cores' if o.threads is None else f'{o.threads} thread(s)'}")
    out(f"text: {len(train_tokens):,} training + {len(valid_tokens):,} held-out words "
        f"({'embedded corpus' if o.text is None else o.text}); words seen fewer than "
        f"{o.min_count} times are {UNK} ({100 * unk:.1f}% of the held-out words)")
    out(f"unigram baseline: held-out perplexity {baseline:.1f} "
        f"({math.log(baseline):.3f} nats/word): guessing every word from its frequency")

    optimizer = Adam(model.params, lr=o.lr)
    tbptt, keeper, progress = demo.start_run(o, model, optimizer, ckpt, resumed, text_crc,
                                             out, RUN_SETTINGS)
    limit = demo.DIVERGED_FACTOR * math.log(len(vocab))

    def train_window(step, start, stop):
        loss, grads = model.step(inputs[start:stop], targets[start:stop], tbptt)
        norm = clip_grad_norm(grads, o.clip)
        demo.check_diverged(loss, norm, limit, step, o, ckpt, "nats/word")
        with keeper.updating():
            optimizer.step(grads)
        return loss

    def after_step(step, loss, bar):
        if o.sample_length and ((step + 1) % sample_every == 0 or step + 1 == o.steps):
            text_out = model.sample(o.sample_length, o.temperature,
                                    rng=(o.seed, step + 1))   # as in demo._run
            bar.write(f"\n--- sample at step {step + 1} (loss {loss:.3f}, perplexity "
                      f"{math.exp(loss):.1f}) ---\n{text_out}\n")

    demo.train_windows(o, tbptt, keeper, progress, inputs.shape[0], train_window, after_step,
                       "words")
    step, history = keeper.step, keeper.history
    words, elapsed = progress.items, progress.elapsed

    try:
        train_loss = model.evaluate(train_ix, o.batch)
        valid_loss = model.evaluate(valid_ix, valid_batch)
    except KeyboardInterrupt:
        raise TrainingInterrupted(step, ckpt) from None
    valid_ppl = math.exp(valid_loss)
    summary = {"steps": step, "words_per_s": words / elapsed if elapsed else 0.0,
               "train_seconds": elapsed, "baseline_perplexity": baseline,
               "train_loss": train_loss, "valid_loss": valid_loss,
               "valid_perplexity": valid_ppl, "history": history}
    out(f"trained {step} steps in {elapsed:.1f} s ({summary['words_per_s']:,.0f} words/s)")
    out(f"perplexity: {math.exp(train_loss):.1f} on the training text, {valid_ppl:.1f} "
        f"held out; unigram baseline {baseline:.1f}")
    if valid_ppl < baseline:
        out(f"held-out perplexity is {100 * (1 - valid_ppl / baseline):.0f}% below the "
            f"unigram baseline")
    else:
        out(f"held-out perplexity is NOT below the unigram baseline: {demo.advice(history)}")
    if ckpt:
        keeper.save(train_loss=train_loss, valid_loss=valid_loss)
        out(f"checkpoint: {ckpt} (fastbptt sample {ckpt} --length 50; continue training: "
            f"fastbptt demo --resume {ckpt} --steps {2 * o.steps})")
    if o.plot:
        _plot(o.plot, history, math.log(baseline))
        out(f"plot: {o.plot}")
    return summary


def _plot(path, history, baseline):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('--plot needs matplotlib: pip install "fastbptt[plot]"') from None
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    steps, loss = np.array(history).T
    ax.plot(steps, loss, lw=0.8, label="training loss")
    ax.axhline(baseline, color="k", ls="--", lw=0.8, label="unigram baseline (held out)")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/word)", title="Word model loss")
    ax.legend()
    fig.savefig(path, dpi=100)
