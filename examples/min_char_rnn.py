"""min-char-rnn (Karpathy's character-level vanilla RNN in NumPy, Adagrad, chunks of 25
characters) on fastbptt's embedded corpus, written as the script is: the parameters are
module globals and its own lossFun reads them. One line swaps in fastbptt.compat.minchar:

    lossFun = minchar.bind(globals())

    python examples/min_char_rnn.py                    # 2000 iterations, samples on the way
    python examples/min_char_rnn.py --lossfun numpy    # the script's own lossFun
    python examples/min_char_rnn.py --compare          # both at every iteration, checked
    python examples/min_char_rnn.py --small            # a few iterations (CI)

With --compare, every iteration runs the script's lossFun and the bound compat one on the
same state and the training continues on compat's results; every sample is drawn by the
script's sample and by minchar.bind_sample(globals()) from the same random state. It prints
the largest difference seen and exits with status 1 if any sampled index differs or a
result differs by more than 1e-10 (relative to max(1, |value|)).
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastbptt.app.corpus import load_corpus
from fastbptt.compat import minchar

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--iters", type=int, default=2000)
parser.add_argument("--hidden", type=int, default=100, help="hidden_size")
parser.add_argument("--seq-length", type=int, default=25)
parser.add_argument("--lr", type=float, default=1e-1, help="learning_rate (Adagrad)")
parser.add_argument("--sample-every", type=int, default=500)
parser.add_argument("--lossfun", choices=["compat", "numpy"], default="compat",
                    help="fastbptt.compat.minchar (bound to the globals) or the script's own")
parser.add_argument("--compare", action="store_true",
                    help="run both lossFuns and both samplers, check they agree")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--small", action="store_true", help="20 iterations (CI)")
args = parser.parse_args()
if args.small:
    args.iters, args.sample_every = 20, 10
np.random.seed(args.seed)

# data I/O
data = load_corpus()
chars = sorted(set(data))
data_size, vocab_size = len(data), len(chars)
print(f"data has {data_size} characters, {vocab_size} unique.")
char_to_ix = {ch: i for i, ch in enumerate(chars)}
ix_to_char = {i: ch for i, ch in enumerate(chars)}

# hyperparameters
hidden_size = args.hidden
seq_length = args.seq_length
learning_rate = args.lr

# model parameters
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01  # input to hidden
Whh = np.random.randn(hidden_size, hidden_size) * 0.01  # hidden to hidden
Why = np.random.randn(vocab_size, hidden_size) * 0.01  # hidden to output
bh = np.zeros((hidden_size, 1))  # hidden bias
by = np.zeros((vocab_size, 1))  # output bias


def lossFun(inputs, targets, hprev):   # noqa: N802 (the script's names, as written)
    """
    inputs,targets are both list of integers.
    hprev is Hx1 array of initial hidden state
    returns the loss, gradients on model parameters, and last hidden state
    """
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # hidden state
        ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))  # probabilities for next chars
        loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
    # backward pass: compute gradients going backwards
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # backprop into y
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # backprop into h
        dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)  # clip to mitigate exploding gradients
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def sample(h, seed_ix, n):
    """
    sample a sequence of integers from the model
    h is memory state, seed_ix is seed letter for first time step
    """
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    ixes = []
    for t in range(n):
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        p = np.exp(y) / np.sum(np.exp(y))
        ix = np.random.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        ixes.append(ix)
    return ixes


script_lossFun, script_sample = lossFun, sample
if args.lossfun == "compat" or args.compare:
    lossFun = minchar.bind(globals())   # the one changed line: the script's globals, compiled


def largest_difference(a, b):
    """max over the results of max|a - b| / max(1, max|b|)."""
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               / max(1.0, float(np.max(np.abs(np.asarray(y))))) for x, y in zip(a, b))


n, p = 0, 0
mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
mbh, mby = np.zeros_like(bh), np.zeros_like(by)  # memory variables for Adagrad
smooth_loss = -np.log(1.0 / vocab_size) * seq_length  # loss at iteration 0
in_loss, worst, sample_mismatches = 0.0, 0.0, 0
with threadpool_limits(limits=1):   # one BLAS thread: these products are tiny
    while n < args.iters:
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if p + seq_length + 1 >= len(data) or n == 0:
            hprev = np.zeros((hidden_size, 1))  # reset RNN memory
            p = 0  # go from start of data
        inputs = [char_to_ix[ch] for ch in data[p:p + seq_length]]
        targets = [char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]

        # sample from the model now and then
        if n % args.sample_every == 0:
            state = np.random.get_state()
            sample_ix = sample(hprev, inputs[0], 200)
            if args.compare:
                np.random.set_state(state)
                sample_mismatches += minchar.bind_sample(globals())(
                    hprev, inputs[0], 200) != sample_ix
            txt = "".join(ix_to_char[ix] for ix in sample_ix)
            print(f"----\n {txt} \n----")

        # forward seq_length characters through the net and fetch gradient
        start = time.perf_counter()
        loss, dWxh, dWhh, dWhy, dbh, dby, hprev_next = lossFun(inputs, targets, hprev)
        in_loss += time.perf_counter() - start
        if args.compare:
            worst = max(worst, largest_difference(
                (loss, dWxh, dWhh, dWhy, dbh, dby, hprev_next),
                script_lossFun(inputs, targets, hprev)))
        hprev = hprev_next
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        if n % args.sample_every == 0:
            print(f"iter {n}, loss: {smooth_loss:f}")  # print progress

        # perform parameter update with Adagrad
        for param, dparam, mem in zip([Wxh, Whh, Why, bh, by],
                                      [dWxh, dWhh, dWhy, dbh, dby],
                                      [mWxh, mWhh, mWhy, mbh, mby]):
            mem += dparam * dparam
            param += -learning_rate * dparam / np.sqrt(mem + 1e-8)  # adagrad update

        p += seq_length  # move data pointer
        n += 1  # iteration counter
print(f"iter {n}, loss: {smooth_loss:f}")
which = "compat, bound to the globals" if lossFun is not script_lossFun else "the script's"
print(f"lossFun ({which}): {in_loss / n * 1e6:.0f} us per call on average ({n} calls)")
if args.compare:
    print(f"largest difference from the script's lossFun over {n} iterations: {worst:.1e}; "
          f"samples that differ: {sample_mismatches}")
    if worst > 1e-10 or sample_mismatches:
        raise SystemExit("compat and the script disagree")
