"""The min-char-rnn script's lossFun and sample as written, reading the script's globals
(Wxh, Whh, Why, bh, by, vocab_size, np): the oracle of the fastbptt.compat.minchar tests,
run in a namespace that holds those globals."""
import numpy as np

SCRIPT = '''
def lossFun(inputs, targets, hprev):
  xs, hs, ys, ps = {}, {}, {}, {}
  hs[-1] = np.copy(hprev)
  loss = 0
  for t in range(len(inputs)):
    xs[t] = np.zeros((vocab_size,1))
    xs[t][inputs[t]] = 1
    hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t-1]) + bh)
    ys[t] = np.dot(Why, hs[t]) + by
    ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
    loss += -np.log(ps[t][targets[t],0])
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
    dWhh += np.dot(dhraw, hs[t-1].T)
    dhnext = np.dot(Whh.T, dhraw)
  for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
    np.clip(dparam, -5, 5, out=dparam)
  return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1]

def sample(h, seed_ix, n):
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
'''


def script_namespace(Wxh, Whh, Why, bh, by, **extra):
    """A namespace with the script's globals (vocab_size from Wxh) and its lossFun and
    sample defined in it."""
    ns = {"np": np, "vocab_size": np.shape(Wxh)[1], "Wxh": Wxh, "Whh": Whh, "Why": Why,
          "bh": bh, "by": by, **extra}
    exec(SCRIPT, ns)
    return ns


def o_lossFun(inputs, targets, hprev, *params):   # noqa: N802 (the script's name)
    """The script's lossFun on these parameters."""
    return script_namespace(*params)["lossFun"](inputs, targets, hprev)


def o_sample(h, seed_ix, n, *params):
    """The script's sample on these parameters (np.random's global state)."""
    return script_namespace(*params)["sample"](h, seed_ix, n)
