"""Part-of-speech tagging as a many-to-many recurrent model: an embedding, a bidirectional
LSTM and a softmax over the tags at every step, masked by the sentence lengths, trained on
tagged sentences this script generates from the grammar below.

    python examples/tagging.py             # defaults: 3000 sentences, 200 steps
    python examples/tagging.py --small     # a seconds-long run (CI)

The grammar (each choice uniform unless a probability is given; [X] is optional, p = 0.3):

    S    -> NP VP [PP] .
    NP   -> DET [ADJ] NOUN  |  PRON  |  NAME                  (p = 0.6, 0.2, 0.2)
    VP   -> VERB NP  |  AUX VERB NP  |  VERB ADV               (p = 0.5, 0.25, 0.25)
    PP   -> PREP NP

Many words have two tags (WORDS below: "watch", "light", "fly", "saw", "can", ... are both
nouns and verbs, or adjectives, or auxiliaries), so a word's tag depends on its neighbours:
"the watch" against "they watch", "can" after a subject against "a can". The baselines:
the majority tag (every token gets the most frequent tag of the training data) and the
most frequent tag of each word in the training data (context ignored). The model reads
the whole sentence both ways, so it can use the words on either side.

Model: tokens (T, B) -> Embedding(V, E, padding_idx=0) -> LSTM(E, H, bidirectional) ->
(T, B, 2H) -> softmax_cross_entropy over K tags with mask = t < lengths[b]; Adam, gradient
clipping. Held-out sentences come from another seed.
"""
import argparse
import time

import numpy as np

import fastbptt

# The lexicon: every tag's words. A word listed under two tags is ambiguous.
WORDS = {
    "DET": ["the", "a", "every", "this", "that"],
    "ADJ": ["old", "small", "bright", "light", "round", "quiet", "fast"],
    "NOUN": ["clock", "watch", "light", "fly", "saw", "river", "bell", "wheel", "can",
             "key", "spring", "work", "town", "fast"],
    "PRON": ["she", "they", "it", "we"],
    "NAME": ["mira", "tomas", "ada"],
    "VERB": ["watch", "light", "fly", "saw", "work", "wind", "spring", "ring", "turn",
             "keep", "fast", "mend"],
    "AUX": ["can", "will", "must"],
    "ADV": ["slowly", "well", "fast", "again", "today"],
    "PREP": ["in", "on", "by", "near", "that"],
    "PUNCT": ["."],
}
TAGS = list(WORDS)
PAD = "<pad>"


def noun_phrase(rng, out):
    r = rng.random()
    if r < 0.6:
        out.append("DET")
        if rng.random() < 0.3:
            out.append("ADJ")
        out.append("NOUN")
    else:
        out.append("PRON" if r < 0.8 else "NAME")


def sentence_tags(rng):
    """The tag sequence of one sentence drawn from the grammar."""
    tags = []
    noun_phrase(rng, tags)
    r = rng.random()
    if r < 0.75:
        if r >= 0.5:
            tags.append("AUX")
        tags.append("VERB")
        noun_phrase(rng, tags)
    else:
        tags += ["VERB", "ADV"]
    if rng.random() < 0.3:
        tags.append("PREP")
        noun_phrase(rng, tags)
    tags.append("PUNCT")
    return tags


def generate(n, seed):
    """n tagged sentences: a list of (words, tags), each a list of str."""
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(n):
        tags = sentence_tags(rng)
        words = [WORDS[t][rng.integers(len(WORDS[t]))] for t in tags]
        data.append((words, tags))
    return data


def encode(data, word_index, tag_index):
    """Padded, time-major arrays: tokens (T, B) (0 = padding), tags (T, B), lengths (B,)."""
    lengths = np.array([len(w) for w, _ in data])
    T, B = lengths.max(), len(data)
    tokens, tags = np.zeros((T, B), np.int64), np.zeros((T, B), np.int64)
    for b, (words, ts) in enumerate(data):
        tokens[:len(words), b] = [word_index[w] for w in words]
        tags[:len(ts), b] = [tag_index[t] for t in ts]
    return tokens, tags, lengths


class Tagger:
    """Embedding -> bidirectional LSTM -> per-step affine head, with one params dict."""

    def __init__(self, V, K, embedding_dim, hidden, seed):
        rng = np.random.default_rng(seed)
        self.embedding = fastbptt.Embedding(V, embedding_dim, padding_idx=0, seed=rng)
        self.lstm = fastbptt.LSTM(embedding_dim, hidden, bidirectional=True, seed=rng)
        bound = 1 / np.sqrt(2 * hidden)
        self.params = {"embedding.weight": self.embedding.weight, **self.lstm.params,
                       "head.weight": rng.uniform(-bound, bound, (K, 2 * hidden)).astype(np.float32),
                       "head.bias": np.zeros(K, np.float32)}

    def loss(self, tokens, tags, lengths, compute_grad=True):
        """Mean cross-entropy over the real tokens, and the gradients (or the logits'
        argmax when compute_grad is False)."""
        mask = np.arange(tokens.shape[0])[:, None] < lengths[None, :]   # (T, B)
        x = self.embedding.forward(tokens)                                # (T, B, E)
        out, _ = self.lstm.forward(x, lengths=lengths)                    # (T, B, 2H)
        W, b = self.params["head.weight"], self.params["head.bias"]
        if not compute_grad:
            return (out @ W.T + b).argmax(-1), mask
        loss, g = fastbptt.softmax_cross_entropy(out, W, b, tags, mask=mask)
        dx, grads = self.lstm.backward(g.dh)
        grads["embedding.weight"] = self.embedding.backward(dx)["weight"]
        grads["head.weight"], grads["head.bias"] = g.dW, g.db
        return float(loss), grads

    def accuracy(self, tokens, tags, lengths):
        predicted, mask = self.loss(tokens, tags, lengths, compute_grad=False)
        return float((predicted == tags)[mask].mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=3000, help="training sentences")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps")
    parser.add_argument("--batch", type=int, default=32, help="sentences per step")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32, help="per direction")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="a seconds-long run (CI)")
    args = parser.parse_args()
    if args.small:
        args.sentences, args.steps, args.hidden, args.embedding_dim = 600, 120, 16, 16

    train = generate(args.sentences, args.seed)
    test = generate(1000, args.seed + 1)
    vocab = [PAD] + sorted({w for ws in WORDS.values() for w in ws})
    word_index = {w: i for i, w in enumerate(vocab)}
    tag_index = {t: k for k, t in enumerate(TAGS)}
    ambiguous = sorted(w for w in vocab[1:] if sum(w in ws for ws in WORDS.values()) > 1)
    print(f"tagging: {len(train)} training and {len(test)} held-out sentences from the "
          f"grammar, {len(vocab) - 1} words ({len(ambiguous)} with two or more tags: "
          f"{', '.join(ambiguous)}), {len(TAGS)} tags")

    # Baselines from the training data alone.
    train_pairs = [(w, t) for words, tags in train for w, t in zip(words, tags)]
    test_pairs = [(w, t) for words, tags in test for w, t in zip(words, tags)]
    tag_counts = {t: 0 for t in TAGS}
    per_word = {}
    for w, t in train_pairs:
        tag_counts[t] += 1
        per_word.setdefault(w, dict.fromkeys(TAGS, 0))[t] += 1
    majority = max(tag_counts, key=tag_counts.get)
    majority_acc = np.mean([t == majority for _, t in test_pairs])
    word_tag = {w: max(c, key=c.get) for w, c in per_word.items()}
    word_acc = np.mean([word_tag.get(w, majority) == t for w, t in test_pairs])
    print(f"majority-tag baseline ({majority} for every token): {majority_acc:.3f} per-token "
          f"accuracy on the held-out sentences")
    print(f"per-word baseline (each word's most frequent training tag): {word_acc:.3f}")

    tokens, tags, lengths = encode(train, word_index, tag_index)
    test_arrays = encode(test, word_index, tag_index)
    model = Tagger(len(vocab), len(TAGS), args.embedding_dim, args.hidden, args.seed)
    opt = fastbptt.Adam(model.params, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        rows = rng.choice(len(train), args.batch, replace=False)
        T = lengths[rows].max()   # trim the batch's padding
        loss, grads = model.loss(tokens[:T, rows], tags[:T, rows], lengths[rows])
        fastbptt.clip_grad_norm(grads, 5.0)
        opt.step(grads)
        if step % max(1, args.steps // 4) == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss:.3f}  held-out accuracy "
                  f"{model.accuracy(*test_arrays):.3f}")
    elapsed = time.perf_counter() - start
    acc = model.accuracy(*test_arrays)
    print(f"trained {args.steps} steps in {elapsed:.1f} s")
    print(f"per-token accuracy: {acc:.3f} held out; majority-tag baseline {majority_acc:.3f}, "
          f"per-word baseline {word_acc:.3f}")
    print(f"{100 * (acc - majority_acc):.1f} points above the majority-tag baseline, "
          f"{100 * (acc - word_acc):.1f} above the per-word one")


if __name__ == "__main__":
    main()
