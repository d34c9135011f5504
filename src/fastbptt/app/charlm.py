"""A character-level language model: one-hot characters -> recurrent layers -> softmax.

The model behind `fastbptt demo` and `fastbptt sample`, and a small worked example of the
library: a layer class (RNN, LSTM or GRU) carries the text, a fused affine + softmax
cross-entropy head (`softmax_cross_entropy`) scores the next character, and the parameters
of both live in one flat dict that the optimizers update in place.

Shapes: V characters in the vocabulary, H hidden units, T steps, B streams.
  x        (T, B, V)  one-hot inputs
  output   (T, B, H)  the top layer's hidden states
  logits   (T, B, V)  = output @ W_out.T + b_out (never stored: the loss is fused)
"""
import numpy as np

from fastbptt import losses
from fastbptt.nn.layers import LAYERS
from fastbptt.nn.stepper import Stepper
from fastbptt.runtime.backend import implementation
from fastbptt.training.checkpoint import (
    CheckpointError,
    load_arrays,
    load_params_into,
    read_meta,
    require,
    run_arrays,
    save_atomic,
)

HEAD_KEYS = ("head.weight", "head.bias")
_FORMAT = "fastbptt-charlm-1"
_ENCODE_CHUNK = 1 << 20      # characters encoded at a time
_EVAL_BYTES = 1 << 24        # one-hot inputs per evaluation chunk: 16 MiB


def unigram_entropy(text):
    """Cross-entropy in nats/char of predicting `text` from its own character frequencies:
    the loss of a model that ignores context, the baseline a language model must beat."""
    chars, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), np.uint32),
                              return_counts=True)
    return count_entropy(counts)


def count_entropy(counts):
    """-sum p log p (nats) of the frequencies p = counts / sum(counts); zero counts add
    nothing. unigram_entropy from the counts alone (np.bincount of a text's indices)."""
    counts = np.asarray(counts, np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class CharLM:
    """Vocabulary, recurrent layers and output head of a character language model.

    `params` is one dict: the layer's arrays under their torch keys ("weight_ih_l0", ...;
    the same arrays as layer.params, not copies) and the head's under "head.weight" (V, H)
    and "head.bias" (V,), so the gradients that layer.backward and head_loss return merge
    into one dict with the same keys.
    """

    def __init__(self, vocab, cell="lstm", hidden_size=256, num_layers=1, dtype=np.float32,
                 seed=0, backend="compiled"):
        if cell not in LAYERS:
            raise ValueError(f"cell must be one of {', '.join(LAYERS)}, got {cell!r}")
        vocab = "".join(vocab)
        if len(vocab) < 2 or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must be at least 2 distinct characters")
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)}
        self.cell = cell
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        V = len(vocab)
        self.layer = LAYERS[cell](V, hidden_size, num_layers=num_layers, dtype=self.dtype,
                                  seed=rng, backend=backend)
        bound = 1.0 / np.sqrt(hidden_size)   # torch.nn.Linear's default init
        self.params = dict(self.layer.params)
        self.params["head.weight"] = rng.uniform(-bound, bound, (V, hidden_size)).astype(self.dtype)
        self.params["head.bias"] = rng.uniform(-bound, bound, V).astype(self.dtype)
        self.backend = backend

    # ------------------------------------------------------------ configuration

    @property
    def backend(self):
        return self.layer.backend

    @backend.setter
    def backend(self, value):
        """"compiled" or "reference" pins the layer and the loss; None follows
        fastbptt.set_backend / use_backend, like the layer classes."""
        self.layer.backend = value   # validates
        self._loss = (losses.softmax_cross_entropy if value is None
                      else implementation("softmax_cross_entropy", value))

    @property
    def hidden_size(self):
        return self.layer.hidden_size

    @property
    def num_layers(self):
        return self.layer.num_layers

    def config(self):
        return {"format": _FORMAT, "vocab": self.vocab, "cell": self.cell,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "dtype": self.dtype.name}

    # ------------------------------------------------------------ text <-> arrays

    def encode(self, text, dtype=np.int64):
        """Character indices (len(text),) of `dtype` (an integer type wide enough for the
        vocabulary); ValueError names an unknown character. Encoded a million characters
        at a time, so a long text costs its index array and no more."""
        codes = np.array([ord(ch) for ch in self.vocab], np.uint32)
        order = np.argsort(codes)
        sorted_codes = codes[order]
        out = np.empty(len(text), dtype)
        for lo in range(0, len(text), _ENCODE_CHUNK):
            chunk = np.frombuffer(text[lo:lo + _ENCODE_CHUNK].encode("utf-32-le"), np.uint32)
            pos = np.minimum(np.searchsorted(sorted_codes, chunk), len(codes) - 1)
            unknown = sorted_codes[pos] != chunk
            if unknown.any():
                ch = chr(chunk[np.argmax(unknown)])
                raise ValueError(f"character {ch!r} is not in the model's vocabulary")
            out[lo:lo + _ENCODE_CHUNK] = order[pos]
        return out

    def decode(self, indices):
        return "".join(self.vocab[i] for i in indices)

    def one_hot(self, indices):
        """(..., V) one-hot rows of self.dtype for an int array of any shape."""
        indices = np.asarray(indices, np.intp)
        out = np.zeros(indices.shape + (len(self.vocab),), self.dtype)
        np.put_along_axis(out, indices[..., None], 1, axis=-1)
        return out

    # ------------------------------------------------------------ training pieces

    def head_loss(self, output, targets, compute_grad=True):
        """Mean cross-entropy (nats/char) of predicting targets (T, B) from output (T, B, H).
        Returns loss, d_output (or None) and the head's gradients as a dict."""
        loss, g = self._loss(output, self.params["head.weight"], self.params["head.bias"],
                             targets, reduction="mean", compute_grad=compute_grad)
        if not compute_grad:
            return float(loss), None, {}
        return float(loss), g.dh, {"head.weight": g.dW, "head.bias": g.db}

    def evaluate(self, indices, batch=32):
        """Mean cross-entropy (nats/char) of predicting indices[1:] from indices[:-1], the
        text cut into `batch` parallel streams run from zero state (no gradients).

        The streams run in chunks of steps, the state carried from one to the next, so the
        memory is that of one chunk's one-hot inputs (chunk, B, V) and activations, about
        _EVAL_BYTES, whatever the text's length:
        loss = sum over chunks of mean_chunk * steps_chunk / T.
        """
        T = (len(indices) - 1) // batch
        if T < 1:
            raise ValueError(f"text too short to evaluate with batch={batch}")
        inputs = indices[:T * batch].reshape(batch, T).T             # (T, B), a view
        targets = indices[1:T * batch + 1].reshape(batch, T).T       # (T, B), a view
        # per step: the one-hot inputs (B, V) and what the forward keeps, at most about
        # 8 H per layer and stream (an LSTM's four gates, c, h, the output)
        per_step = batch * (len(self.vocab) + 8 * self.hidden_size * self.num_layers)
        chunk = max(1, _EVAL_BYTES // (per_step * self.dtype.itemsize))
        state, total = None, 0.0
        for start in range(0, T, chunk):
            stop = min(start + chunk, T)
            output, state = self.layer.forward(self.one_hot(inputs[start:stop]), state)
            loss, _, _ = self.head_loss(output, np.ascontiguousarray(targets[start:stop],
                                                                     np.intp),
                                        compute_grad=False)
            total += loss * (stop - start)
        return total / T

    # ------------------------------------------------------------ generation

    def sample(self, length, temperature=1.0, prime="", rng=None):
        """`length` generated characters: the continuation of `prime` (which must use the
        vocabulary), or, when prime is empty, a random first character and its continuation.
        One layer step per character, the state carried; temperature < 1 sharpens the
        softmax, > 1 flattens it."""
        check_sampling(length, temperature)
        rng = np.random.default_rng(rng)
        generated = []
        if prime:
            context = self.encode(prime)
        else:
            if length == 0:
                return ""
            context = rng.integers(len(self.vocab), size=1)
            generated.append(int(context[0]))
        # the head with the temperature folded in, in float64 for the softmax:
        # logits (V,) = h (H,) @ W_t (H, V) + b_t, W_t = W^T / temperature
        W_t = np.ascontiguousarray(self.params["head.weight"].T, np.float64) / temperature
        b_t = self.params["head.bias"].astype(np.float64) / temperature
        u = rng.random(length - len(generated))   # one uniform draw per character
        # the context in one call, then one character per step fed back in through a
        # Stepper (validated once, no tape), as the index of its one-hot input row
        output, state = self.layer.forward(self.one_hot(context[:, None]))
        stepper = Stepper(self.layer, 1, state)
        index = stepper.index   # (1,): the next input is the one-hot row e_index[0]
        V = len(self.vocab)
        # the head's buffers, written in place each character
        h64 = output[-1, 0].astype(np.float64)   # (H,) the top layer's h, in float64
        logits = np.empty(V)
        # inverse-CDF sampling of p = softmax(logits): the first index whose cumulative
        # weight exceeds u * sum (rng.choice's checks cost more than this); compiled, or
        # its NumPy twin: the same draws
        if stepper.compiled:
            from fastbptt._kernels.step import InverseCDF
        else:
            from fastbptt.reference.sampling import InverseCDF
        softmax = InverseCDF(logits, b_t)
        shift, draw = softmax.shift, softmax.draw
        matmul, exp, copyto = np.matmul, np.exp, np.copyto
        for i in range(len(u)):
            matmul(h64, W_t, out=logits)
            shift()                  # logits := logits + b_t - max(logits + b_t)
            exp(logits, out=logits)
            ix = draw(u[i])
            generated.append(ix)
            if i + 1 < len(u):
                index[0] = ix
                copyto(h64, stepper.advance_index()[0])
        return self.decode(generated)

    # ------------------------------------------------------------ checkpoints

    def save(self, path, **extra):
        """Write the parameters and configuration to a .npz (no pickles), atomically;
        `extra` holds JSON-serialisable facts about training (step, loss, ...)."""
        meta = dict(self.config(), **extra)
        save_atomic(path, run_arrays(meta, self.params))

    @classmethod
    def load(cls, path, backend="compiled"):
        """A model from a file written by save(); returns (model, meta dict).
        CheckpointError (a ValueError) naming the file for anything else."""
        model, meta, _ = cls.load_arrays(path, backend)
        return model, meta

    @classmethod
    def load_arrays(cls, path, backend="compiled"):
        """load(), also returning every array the file holds (a run's optimizer and
        carried state for --resume)."""
        arrays = load_arrays(path)
        meta = read_meta(path, arrays)
        if meta.get("format") != _FORMAT:
            if "format" not in meta:
                raise CheckpointError(f"{path} is not a fastbptt character-model checkpoint")
            raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
        require(path, meta, "vocab", "cell", "hidden_size", "num_layers", "dtype")
        model = cls(meta["vocab"], cell=meta["cell"], hidden_size=meta["hidden_size"],
                    num_layers=meta["num_layers"], dtype=meta["dtype"], backend=backend)
        load_params_into(path, model.params, arrays)   # in place: the layer shares them
        return model, meta, arrays


def check_sampling(length, temperature):
    """ValueError unless length is an int >= 0 and temperature a finite number > 0: the
    arguments of the character and the word models' sample()."""
    if not (isinstance(length, (int, np.integer)) and length >= 0):
        raise ValueError(f"length must be an int >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float, np.floating)) and np.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
