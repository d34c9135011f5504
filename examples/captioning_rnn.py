"""An image-captioning model written the way the CS231n assignment-3 solutions write
CaptioningRNN (loss, and test-time sampling that embeds the <START> token as a scalar and
steps the cell on the resulting 1-D word vector), run twice: once on NumPy layer functions
written the course's way (examples/cs231n_model.py, plus the course's affine layer) and
once on `fastbptt.compat.cs231n`. The model code is the same for both.

    python examples/captioning_rnn.py                  # LSTM, float64, 300 Adam steps
    python examples/captioning_rnn.py --cell rnn
    python examples/captioning_rnn.py --dtype float32  # a float32 model fed float64 features
    python examples/captioning_rnn.py --small          # a few steps (CI)

It prints the notebook's loss sanity check (CaptioningRNN.loss on np.linspace parameters,
expected 9.83235591003 for the RNN and 9.82445935443 for the LSTM), the training losses of
both runs side by side, and the captions both sample for the training images, and exits
with status 1 if the sampled indices differ anywhere or a loss differs by more than the
dtype's tolerance. The data is synthetic: each "image" is a feature vector whose caption
(two words out of a small vocabulary, each picked by a fixed projection of the features,
then <END>) the model learns to say.
"""
import argparse
import types

import numpy as np
from cs231n_model import numpy_layers as course_rnn_layers  # the course's rnn_layers.py

# ---------------------------------------------------------------- the course's layers.py

def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db


# ---------------------------------------------------------------- the model, as solved

class CaptioningRNN:
    """CaptioningRNN of the assignment, its solutions' loss and sample. `layers` holds the
    rnn_layers functions (the solutions' `from ..rnn_layers import *`)."""

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128,
                 cell_type="rnn", dtype=np.float32, layers=None, seed=0):
        if cell_type not in {"rnn", "lstm"}:
            raise ValueError('Invalid cell_type "%s"' % cell_type)
        self.cell_type = cell_type
        self.dtype = dtype
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.params = {}
        self.layers = layers
        vocab_size = len(word_to_idx)
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>", None)
        self._end = word_to_idx.get("<END>", None)
        rng = np.random.RandomState(seed)

        self.params["W_embed"] = rng.randn(vocab_size, wordvec_dim) / 100
        self.params["W_proj"] = rng.randn(input_dim, hidden_dim) / np.sqrt(input_dim)
        self.params["b_proj"] = np.zeros(hidden_dim)
        dim_mul = {"lstm": 4, "rnn": 1}[cell_type]
        self.params["Wx"] = rng.randn(wordvec_dim, dim_mul * hidden_dim) / np.sqrt(wordvec_dim)
        self.params["Wh"] = rng.randn(hidden_dim, dim_mul * hidden_dim) / np.sqrt(hidden_dim)
        self.params["b"] = np.zeros(dim_mul * hidden_dim)
        self.params["W_vocab"] = rng.randn(hidden_dim, vocab_size) / np.sqrt(hidden_dim)
        self.params["b_vocab"] = np.zeros(vocab_size)
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def loss(self, features, captions):
        L = self.layers
        captions_in = captions[:, :-1]
        captions_out = captions[:, 1:]
        mask = captions_out != self._null
        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        grads = {}
        h0, cache_h0 = affine_forward(features, W_proj, b_proj)
        x, cache_embed = L.word_embedding_forward(captions_in, W_embed)
        if self.cell_type == "rnn":
            h, cache_rnn = L.rnn_forward(x, h0, Wx, Wh, b)
        else:
            h, cache_rnn = L.lstm_forward(x, h0, Wx, Wh, b)
        scores, cache_scores = L.temporal_affine_forward(h, W_vocab, b_vocab)
        loss, dscores = L.temporal_softmax_loss(scores, captions_out, mask)

        dh, grads["W_vocab"], grads["b_vocab"] = L.temporal_affine_backward(dscores,
                                                                             cache_scores)
        if self.cell_type == "rnn":
            dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = L.rnn_backward(dh, cache_rnn)
        else:
            dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = L.lstm_backward(dh, cache_rnn)
        grads["W_embed"] = L.word_embedding_backward(dx, cache_embed)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, cache_h0)
        return loss, grads

    def sample(self, features, max_length=30):
        L = self.layers
        N = features.shape[0]
        captions = self._null * np.ones((N, max_length), dtype=np.int32)
        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        h, _ = affine_forward(features, W_proj, b_proj)
        c = np.zeros_like(h)
        word, _ = L.word_embedding_forward(self._start, W_embed)     # (W,): one start token
        for t in range(max_length):
            if self.cell_type == "rnn":
                h, _ = L.rnn_step_forward(word, h, Wx, Wh, b)        # (W,) against (N, H)
            else:
                h, c, _ = L.lstm_step_forward(word, h, c, Wx, Wh, b)
            scores, _ = affine_forward(h, W_vocab, b_vocab)
            idx = np.argmax(scores, axis=1)
            captions[:, t] = idx
            word, _ = L.word_embedding_forward(idx, W_embed)         # (N, W)
        return captions


# ---------------------------------------------------------------- the course's optim.adam

def adam(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    config["t"] += 1
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * dw ** 2
    m_hat = config["m"] / (1 - config["beta1"] ** config["t"])
    v_hat = config["v"] / (1 - config["beta2"] ** config["t"])
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    return next_w, config


# ---------------------------------------------------------------- data, training, checks

def notebook_loss_check(layers, cell):
    """The notebook's CaptioningRNN loss sanity check (float64, linspace parameters)."""
    N, D, W, H = 10, 20, 30, 40
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    V, T = len(word_to_idx), 13
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          cell_type=cell, dtype=np.float64, layers=layers)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    low, high = {"rnn": (-1.5, 0.3), "lstm": (-0.5, 1.7)}[cell]   # the two notebooks'
    features = np.linspace(low, high, num=(N * D)).reshape(N, D)
    captions = (np.arange(N * T) % V).reshape(N, T)
    loss, _ = model.loss(features, captions)
    return float(loss)


NOTEBOOK_EXPECTED = {"rnn": 9.83235591003, "lstm": 9.82445935443}   # printed to 11 digits

WORDS = ["a", "red", "blue", "green", "cat", "dog", "bird", "fish", "sits", "runs", "flies",
         "swims"]


def make_data(n_images, input_dim, seed):
    """Features (n, input_dim) float64 and captions (n, 5): <START> w1 w2 <END> <NULL>,
    w1 = colour, w2 = animal, each chosen by the argmax of a fixed projection."""
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    word_to_idx.update({w: i + 3 for i, w in enumerate(WORDS)})
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_images, input_dim))
    colours = np.argmax(features @ rng.standard_normal((input_dim, 3)), axis=1)
    animals = np.argmax(features @ rng.standard_normal((input_dim, 4)), axis=1)
    captions = np.zeros((n_images, 5), np.int64)
    captions[:, 0] = word_to_idx["<START>"]
    captions[:, 1] = colours + word_to_idx["red"]
    captions[:, 2] = animals + word_to_idx["cat"]
    captions[:, 3] = word_to_idx["<END>"]
    return word_to_idx, features, captions


def train(layers, args, word_to_idx, features, captions):
    """Full-batch Adam on the captions; returns the model and its losses."""
    model = CaptioningRNN(word_to_idx, input_dim=features.shape[1], wordvec_dim=args.wordvec,
                          hidden_dim=args.hidden, cell_type=args.cell,
                          dtype=np.dtype(args.dtype).type, layers=layers, seed=args.seed)
    configs = {k: {"learning_rate": args.lr} for k in model.params}
    losses = []
    for _ in range(args.steps):
        loss, grads = model.loss(features, captions)
        for k in model.params:
            model.params[k], configs[k] = adam(model.params[k], grads[k], configs[k])
        losses.append(float(loss))
    return model, losses


def decode(model, row):
    words = []
    for ix in row:
        if ix == model._end:
            break
        words.append(model.idx_to_word[int(ix)])
    return " ".join(words)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=["lstm", "rnn"], default="lstm")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="the model's dtype; the features stay float64 (mixed in "
                             "float32, promoted as NumPy promotes)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps (full batch)")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--input-dim", type=int, default=32)
    parser.add_argument("--wordvec", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=6, help="sampled words")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="a quick check (CI)")
    args = parser.parse_args(argv)
    if args.small:
        args.steps, args.images = 20, 12

    from threadpoolctl import threadpool_limits

    from fastbptt.compat import cs231n
    numpy_layers = types.SimpleNamespace(**vars(course_rnn_layers))
    runs = {"NumPy layers": numpy_layers, "fastbptt.compat": cs231n}
    tol = {"float64": 1e-9, "float32": 1e-4}[args.dtype]
    ok = True

    with threadpool_limits(limits=1):
        print("notebook loss check (float64, np.linspace parameters):")
        for cell in ("rnn", "lstm"):
            got = {name: notebook_loss_check(layers, cell) for name, layers in runs.items()}
            print(f"  {cell:4s} expected {NOTEBOOK_EXPECTED[cell]:.11f}   "
                  + "   ".join(f"{name} {v:.15f}" for name, v in got.items()))
            ok &= all(abs(v - NOTEBOOK_EXPECTED[cell]) < 1e-10 for v in got.values())

        word_to_idx, features, captions = make_data(args.images, args.input_dim, args.seed)
        results = {name: train(layers, args, word_to_idx, features, captions)
                   for name, layers in runs.items()}
        sampled = {name: model.sample(features, args.max_length)
                   for name, (model, _) in results.items()}

    (np_model, np_losses), (_, fb_losses) = results.values()
    print(f"\n{args.cell.upper()} CaptioningRNN, {args.images} images, V={len(word_to_idx)}, "
          f"H={args.hidden}, {args.steps} Adam steps, model {args.dtype}, features float64")
    print(f"{'step':>6} {'NumPy layers':>18} {'fastbptt.compat':>18}")
    every = max(1, args.steps // 10)
    for k in list(range(0, args.steps, every)) + [args.steps - 1]:
        print(f"{k:>6} {np_losses[k]:>18.12f} {fb_losses[k]:>18.12f}")
    diff = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(np_losses, fb_losses))
    print(f"largest relative loss difference: {diff:.1e} (tolerance {tol:.0e})")
    ok &= diff <= tol

    a, b = sampled.values()
    same = bool(np.array_equal(a, b))
    print(f"\nsampled indices (scalar <START> token, {args.max_length} steps), first images:")
    for i in range(min(4, args.images)):
        print(f"  image {i}: NumPy {a[i].tolist()}  compat {b[i].tolist()}  "
              f"'{decode(np_model, a[i])}' (truth '{decode(np_model, captions[i, 1:])}')")
    correct = np.mean([decode(np_model, a[i]) == decode(np_model, captions[i, 1:])
                       for i in range(args.images)])
    print(f"identical sampled indices for all {args.images} images: {same}; "
          f"captions right: {correct:.0%}")
    ok &= same
    if not ok:
        raise SystemExit("the NumPy layers and fastbptt.compat disagree")


if __name__ == "__main__":
    main()
