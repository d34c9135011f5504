"""min-char-rnn (Karpathy's character-level vanilla RNN in NumPy, Adagrad, chunks of 25
characters) on fastbptt's embedded corpus, with the script's lossFun and sample taken
from `fastbptt.compat.minchar`: the one changed import.

    python examples/min_char_rnn.py                    # 2000 iterations, samples on the way
    python examples/min_char_rnn.py --lossfun numpy    # the script's own loop, to compare
    python examples/min_char_rnn.py --small            # a few iterations (CI)
"""
import argparse
import time

import numpy as np

from fastbptt.compat.minchar import lossFun, sample
from fastbptt.app.corpus import load_corpus


def numpy_lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):   # noqa: N802
    """The script's lossFun, its loops as written (the parameters passed in)."""
    vocab_size = Wxh.shape[1]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=100, help="hidden_size")
    parser.add_argument("--seq-length", type=int, default=25)
    parser.add_argument("--lr", type=float, default=1e-1, help="learning_rate (Adagrad)")
    parser.add_argument("--sample-every", type=int, default=500)
    parser.add_argument("--lossfun", choices=["compat", "numpy"], default="compat",
                        help="fastbptt.compat.minchar.lossFun or the script's own loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="20 iterations (CI)")
    args = parser.parse_args(argv)
    if args.small:
        args.iters, args.sample_every = 20, 10
    loss_fn = lossFun if args.lossfun == "compat" else numpy_lossFun
    from threadpoolctl import threadpool_limits

    np.random.seed(args.seed)
    data = load_corpus()
    chars = sorted(set(data))
    data_size, vocab_size = len(data), len(chars)
    print(f"data has {data_size} characters, {vocab_size} unique.")
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    ix_to_char = {i: ch for i, ch in enumerate(chars)}

    hidden_size, seq_length, learning_rate = args.hidden, args.seq_length, args.lr
    Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
    Whh = np.random.randn(hidden_size, hidden_size) * 0.01
    Why = np.random.randn(vocab_size, hidden_size) * 0.01
    bh = np.zeros((hidden_size, 1))
    by = np.zeros((vocab_size, 1))

    n, p = 0, 0
    mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    mbh, mby = np.zeros_like(bh), np.zeros_like(by)
    smooth_loss = -np.log(1.0 / vocab_size) * seq_length
    in_loss = 0.0
    with threadpool_limits(limits=1):   # one BLAS thread: these products are tiny
        while n < args.iters:
            if p + seq_length + 1 >= len(data) or n == 0:
                hprev = np.zeros((hidden_size, 1))
                p = 0
            inputs = [char_to_ix[ch] for ch in data[p:p + seq_length]]
            targets = [char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]

            if n % args.sample_every == 0:
                sample_ix = sample(hprev, inputs[0], 200, Wxh, Whh, Why, bh, by)
                txt = "".join(ix_to_char[ix] for ix in sample_ix)
                print(f"----\n {txt} \n----")

            start = time.perf_counter()
            loss, dWxh, dWhh, dWhy, dbh, dby, hprev = loss_fn(inputs, targets, hprev,
                                                              Wxh, Whh, Why, bh, by)
            in_loss += time.perf_counter() - start
            smooth_loss = smooth_loss * 0.999 + loss * 0.001
            if n % args.sample_every == 0:
                print(f"iter {n}, loss: {smooth_loss:f}")

            for param, dparam, mem in zip([Wxh, Whh, Why, bh, by],
                                          [dWxh, dWhh, dWhy, dbh, dby],
                                          [mWxh, mWhh, mWhy, mbh, mby]):
                mem += dparam * dparam
                param += -learning_rate * dparam / np.sqrt(mem + 1e-8)   # adagrad update

            p += seq_length
            n += 1
    print(f"iter {n}, loss: {smooth_loss:f}")
    print(f"lossFun ({args.lossfun}): {in_loss / n * 1e6:.0f} us per call on average "
          f"({n} calls)")


if __name__ == "__main__":
    main()
