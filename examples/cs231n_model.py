"""A small sequence model written the CS231n way, trained twice: once on NumPy layer
functions written here (the assignments' rnn_layers.py, step functions looped over time),
once on fastbptt's drop-in `from fastbptt.compat import cs231n as layers`. The model code
is the same for both; it prints both runs' losses and times (this thread's CPU time and
the wall time).

    python examples/cs231n_model.py                # defaults: LSTM, N=2, T=50, H=32, 100 steps
    python examples/cs231n_model.py --cell rnn --steps 300
    python examples/cs231n_model.py --small        # a few steps on tiny sizes (CI)

The task (synthetic): read a random token sequence and at every step predict the token
seen `--delay` steps earlier (a recall task the recurrence has to carry state for); the
first `delay` steps have no target and are masked out of the loss.
Model: word embedding (V, D) -> RNN or LSTM (H) -> temporal affine (H, V) -> temporal
softmax loss, trained by plain SGD.
"""
import argparse
import time
import types

import numpy as np

# ---------------------------------------------------------------- NumPy layers (CS231n)

def sigmoid(x):
    """A numerically stable sigmoid."""
    pos = x >= 0
    z = np.zeros_like(x)
    z[pos] = np.exp(-x[pos])
    z[~pos] = np.exp(x[~pos])
    top = np.ones_like(x)
    top[~pos] = z[~pos]
    return top / (1 + z)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(prev_h.dot(Wh) + x.dot(Wx) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]), x.dtype)
    prev_h, cache = h0, []
    for t in range(T):
        prev_h, c = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = prev_h
        cache.append(c)
    return h, cache


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dh0 = np.zeros((N, H))
    dWx, dWh, db = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    for t in reversed(range(T)):
        dx[:, t, :], dh0, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dh0, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh0, dWx, dWh, db


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    di, df, do, dg = dc * g, dc * prev_c, dnext_h * tanh_c, dc * i
    da = np.hstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)))
    return (da.dot(Wx.T), da.dot(Wh.T), dc * f, x.T.dot(da), prev_h.T.dot(da),
            da.sum(axis=0))


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), x.dtype)
    prev_h, prev_c, cache = h0, np.zeros_like(h0), []
    for t in range(T):
        prev_h, prev_c, c = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        cache.append(c)
    return h, cache


def lstm_backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dh0, dc0 = np.zeros((N, H)), np.zeros((N, H))
    dWx, dWh, db = np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
    for t in reversed(range(T)):
        dx[:, t, :], dh0, dc0, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t, :] + dh0, dc0,
                                                                       cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x, W):
    return W[x, :], (x, W)


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    M = b.shape[0]
    out = x.reshape(N * T, D).dot(w).reshape(N, T, M) + b
    return out, (x, w, b, out)


def temporal_affine_backward(dout, cache):
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = dout.reshape(N * T, M).T.dot(x.reshape(N * T, D)).T
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape
    x_flat, y_flat, mask_flat = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T)
    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    if verbose:
        print("dx_flat: ", dx_flat.shape)
    return loss, dx_flat.reshape(N, T, V)


numpy_layers = types.SimpleNamespace(**{name: globals()[name] for name in (
    "rnn_step_forward", "rnn_step_backward", "lstm_step_forward", "lstm_step_backward",
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "word_embedding_forward",
    "word_embedding_backward", "temporal_affine_forward", "temporal_affine_backward",
    "temporal_softmax_loss")})


# ---------------------------------------------------------------- the model (either layers)

def init_params(V, D, H, cell, seed):
    G = 4 if cell == "lstm" else 1
    rng = np.random.default_rng(seed)
    return {
        "W_embed": rng.standard_normal((V, D)) / 10,
        "Wx": rng.standard_normal((D, G * H)) / np.sqrt(D),
        "Wh": rng.standard_normal((H, G * H)) / np.sqrt(H),
        "b": np.zeros(G * H),
        "W_vocab": rng.standard_normal((H, V)) / np.sqrt(H),
        "b_vocab": np.zeros(V),
    }


def loss_and_grads(layers, params, x, y, mask, cell):
    """One forward and backward pass of the model through `layers`."""
    forward = getattr(layers, f"{cell}_forward")
    backward = getattr(layers, f"{cell}_backward")
    N = x.shape[0]
    H = params["Wh"].shape[0]
    emb, emb_cache = layers.word_embedding_forward(x, params["W_embed"])
    h, rnn_cache = forward(emb, np.zeros((N, H)), params["Wx"], params["Wh"], params["b"])
    scores, aff_cache = layers.temporal_affine_forward(h, params["W_vocab"], params["b_vocab"])
    loss, dscores = layers.temporal_softmax_loss(scores, y, mask)
    grads = {}
    dh, grads["W_vocab"], grads["b_vocab"] = layers.temporal_affine_backward(dscores, aff_cache)
    demb, _, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, rnn_cache)
    grads["W_embed"] = layers.word_embedding_backward(demb, emb_cache)
    return loss, grads


def make_batches(steps, N, T, V, delay, seed):
    """`steps` batches of (x, y, mask): y[:, t] = x[:, t - delay], masked for t < delay."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        x = rng.integers(0, V, (N, T))
        y = np.zeros_like(x)
        y[:, delay:] = x[:, :T - delay]
        mask = np.zeros((N, T), bool)
        mask[:, delay:] = True
        batches.append((x, y, mask))
    return batches


def train(layers, batches, args):
    """Plain SGD over the batches; returns the losses, the wall-clock seconds and this
    thread's CPU seconds (BLAS runs in this thread with one BLAS thread)."""
    params = init_params(args.V, args.D, args.H, args.cell, args.seed)
    losses = []
    wall, cpu = time.perf_counter(), time.thread_time()
    for x, y, mask in batches:
        loss, grads = loss_and_grads(layers, params, x, y, mask, args.cell)
        for name, g in grads.items():
            params[name] -= args.lr * g
        losses.append(float(loss))
    return losses, time.perf_counter() - wall, time.thread_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=["lstm", "rnn"], default="lstm")
    parser.add_argument("--steps", type=int, default=100, help="SGD steps (batches)")
    parser.add_argument("--N", type=int, default=2, help="batch size")
    parser.add_argument("--T", type=int, default=50, help="sequence length")
    parser.add_argument("--V", type=int, default=16, help="vocabulary size")
    parser.add_argument("--D", type=int, default=16, help="embedding size")
    parser.add_argument("--H", type=int, default=32, help="hidden size")
    parser.add_argument("--delay", type=int, default=2, help="recall this many steps back")
    parser.add_argument("--lr", type=float, default=None,
                        help="SGD step size (default 0.1 for the LSTM, 0.02 for the RNN)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true",
                        help="a quick check: 3 steps of N=2, T=6, H=8 (CI)")
    args = parser.parse_args(argv)
    if args.small:
        args.steps, args.N, args.T, args.H = 3, 2, 6, 8
    if args.lr is None:
        args.lr = 0.1 if args.cell == "lstm" else 0.02
    if not 0 <= args.delay < args.T:
        parser.error("--delay must lie in [0, T)")

    from threadpoolctl import threadpool_limits

    from fastbptt.compat import cs231n

    batches = make_batches(args.steps, args.N, args.T, args.V, args.delay, args.seed)
    # One BLAS thread for both runs, as `fastbptt bench` does: at these sizes a second
    # BLAS thread only adds synchronisation (and on a busy machine it spins).
    with threadpool_limits(limits=args.threads):
        np_losses, np_wall, np_cpu = train(numpy_layers, batches, args)
        fb_losses, fb_wall, fb_cpu = train(cs231n, batches, args)

    print(f"{args.cell.upper()} N={args.N} T={args.T} V={args.V} D={args.D} H={args.H}, "
          f"{args.steps} SGD steps, float64")
    print(f"{'step':>6} {'NumPy layers':>16} {'fastbptt.compat':>16}")
    every = max(1, args.steps // 10)
    for k in range(0, args.steps, every):
        print(f"{k:>6} {np_losses[k]:>16.10f} {fb_losses[k]:>16.10f}")
    diff = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(np_losses, fb_losses))
    print(f"largest relative loss difference: {diff:.1e}")
    # CPU time is the figure to compare on a shared machine: wall time also counts the
    # waits while other processes run, which fall unevenly on a short and a long run.
    for what, a, b in (("CPU time", np_cpu, fb_cpu), ("wall time", np_wall, fb_wall)):
        print(f"{what:9s}  NumPy layers: {a * 1e3:8.1f} ms   fastbptt.compat.cs231n: "
              f"{b * 1e3:8.1f} ms   speed-up {a / b:.1f}x")
    if diff > 1e-9:
        raise SystemExit("the two runs disagree")


if __name__ == "__main__":
    main()
