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
import json

import numpy as np

from fastbptt import losses
from fastbptt.nn.layers import LAYERS
from fastbptt.runtime.backend import implementation

HEAD_KEYS = ("head.weight", "head.bias")
_FORMAT = "fastbptt-charlm-1"


def unigram_entropy(text):
    """Cross-entropy in nats/char of predicting `text` from its own character frequencies:
    the loss of a model that ignores context, the baseline a language model must beat."""
    chars, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), np.uint32),
                              return_counts=True)
    p = counts / counts.sum()
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

    def encode(self, text):
        """Character indices (len(text),) int64; ValueError names an unknown character."""
        try:
            return np.fromiter((self.index[ch] for ch in text), np.int64, len(text))
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in the model's vocabulary") from None

    def decode(self, indices):
        return "".join(self.vocab[i] for i in indices)

    def one_hot(self, indices):
        """(..., V) one-hot rows of self.dtype for an int array of any shape."""
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
        text cut into `batch` parallel streams run from zero state (no gradients)."""
        T = (len(indices) - 1) // batch
        if T < 1:
            raise ValueError(f"text too short to evaluate with batch={batch}")
        streams = indices[:T * batch + 1]
        x = self.one_hot(streams[:-1].reshape(batch, T).T)          # (T, B, V)
        targets = streams[1:].reshape(batch, T).T                    # (T, B)
        output, _ = self.layer.forward(x)
        loss, _, _ = self.head_loss(output, targets, compute_grad=False)
        return loss

    # ------------------------------------------------------------ generation

    def sample(self, length, temperature=1.0, prime="", rng=None):
        """`length` generated characters: the continuation of `prime` (which must use the
        vocabulary), or, when prime is empty, a random first character and its continuation.
        One layer step per character, the state carried; temperature < 1 sharpens the
        softmax, > 1 flattens it."""
        check_sampling(length, temperature)
        rng = np.random.default_rng(rng)
        W, b = self.params["head.weight"], self.params["head.bias"]
        generated = []
        if prime:
            context = self.encode(prime)
        else:
            if length == 0:
                return ""
            context = rng.integers(len(self.vocab), size=1)
            generated.append(int(context[0]))
        # the context in one call, then one character per step fed back in
        output, state = self.layer.forward(self.one_hot(context[:, None]))
        while len(generated) < length:
            logits = (output[-1, 0] @ W.T + b).astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            ix = int(rng.choice(len(self.vocab), p=p / p.sum()))
            generated.append(ix)
            output, state = self.layer.forward(self.one_hot(np.array([[ix]])), state)
        return self.decode(generated)

    # ------------------------------------------------------------ checkpoints

    def save(self, path, **extra):
        """Write the parameters and configuration to a .npz (no pickles); `extra` holds
        JSON-serialisable facts about training (step, loss, ...)."""
        meta = dict(self.config(), **extra)
        np.savez(path, __meta__=np.array(json.dumps(meta)), **self.params)

    @classmethod
    def load(cls, path, backend="compiled"):
        """A model from a file written by save(); returns (model, meta dict)."""
        with np.load(path, allow_pickle=False) as data:
            if "__meta__" not in data.files:
                raise ValueError(f"{path} is not a fastbptt character-model checkpoint")
            meta = json.loads(str(data["__meta__"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
            model = cls(meta["vocab"], cell=meta["cell"], hidden_size=meta["hidden_size"],
                        num_layers=meta["num_layers"], dtype=meta["dtype"], backend=backend)
            load_params(path, data, model.params)
        return model, meta


def check_sampling(length, temperature):
    """ValueError unless length is an int >= 0 and temperature a finite number > 0: the
    arguments of the character and the word models' sample()."""
    if not (isinstance(length, (int, np.integer)) and length >= 0):
        raise ValueError(f"length must be an int >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float, np.floating)) and np.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def load_params(path, data, params):
    """Fill a model's params (name -> array) from an open .npz `data` read from `path`, in
    place (the layers share these arrays); ValueError naming the file when a parameter is
    missing or has another shape or dtype. The character and the word models' load()."""
    missing = set(params) - set(data.files)
    if missing:
        raise ValueError(f"{path} lacks parameters {sorted(missing)}")
    for key, value in params.items():
        stored = data[key]
        if stored.shape != value.shape or stored.dtype != value.dtype:
            raise ValueError(f"{path}: {key} has shape {stored.shape} {stored.dtype}, "
                             f"expected {value.shape} {value.dtype}")
        value[...] = stored
