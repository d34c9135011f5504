"""What the drop-in compat modules cost and save, measured: the figures behind the user guide's
"Drop-in for NumPy models" page (docs/guide/dropin.md) and the design choices in fastbptt/compat.

    python bench/compat_timings.py [--repeat 15]

Every row is a median over `--repeat` rounds; within a round the compared variants run
one after the other (interleaved, fastbptt.bench.time_interleaved), so load on the
machine hits both alike. One BLAS thread. Sections:
  model     one training step of examples/cs231n_model.py (forward, backward, SGD) on the
            example's NumPy layers and on fastbptt.compat.cs231n, at the example's default
            sizes and a few others
  layers    each layer function of that step alone, same sizes
  convert   compat.cs231n.lstm_forward+backward against fastbptt.lstm_forward+backward
            given weights already in torch layout: the price of the layout conversion
  step      the step functions in NumPy (as shipped) against a T = 1 call of the cells
  embed     word_embedding_backward: np.add.at against the sparse one-hot product
  minchar   lossFun against the script's loop; the one-hot projection as the kernel's
            GEMM (as shipped) against a column gather fed through an identity W_ih
"""
import argparse
import pathlib
import sys

import numpy as np
import scipy.sparse

import fastbptt
from fastbptt import bench
from fastbptt.compat import cs231n, minchar

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
# min-char-rnn's lossFun as written (examples/min_char_rnn.py is a script: it trains when
# imported)
sys.path.insert(0, str(ROOT / "tests"))
import cs231n_model as example  # noqa: E402

import _minchar_script  # noqa: E402


def interleaved(variants, repeat, number):
    """{name: median seconds per call} over `repeat` interleaved rounds of `number` calls
    each, after a warm-up (fastbptt.bench.time_interleaved)."""
    timings = bench.time_interleaved(variants, repeat, number)
    return {name: timing.median for name, timing in timings.items()}


def row(label, t, base, other):
    print(f"| {label} | {t[base] * 1e6:10.1f} | {t[other] * 1e6:10.1f} | "
          f"{t[base] / t[other]:6.1f}x |")


def header(title, a, b):
    print(f"\n### {title}\n\n| case | {a} us | {b} us | ratio |\n|---|---:|---:|---:|")


def model_step(cell, N, T, V, D, H, repeat):
    params = {k: example.init_params(V, D, H, cell, 0) for k in ("numpy", "compat")}
    x, y, mask = example.make_batches(1, N, T, V, 2, 0)[0]
    layers = {"numpy": example.numpy_layers, "compat": cs231n}

    def step(which):
        p = params[which]
        loss, grads = example.loss_and_grads(layers[which], p, x, y, mask, cell)
        for name, g in grads.items():
            p[name] -= 1e-3 * g
    return interleaved({k: (lambda k=k: step(k)) for k in layers}, repeat, 5)


def layer_parts(cell, N, T, V, D, H, repeat):
    p = example.init_params(V, D, H, cell, 0)
    x, y, mask = example.make_batches(1, N, T, V, 2, 0)[0]
    out = {}
    for name, L in (("numpy", example.numpy_layers), ("compat", cs231n)):
        fwd, bwd = getattr(L, f"{cell}_forward"), getattr(L, f"{cell}_backward")
        emb, c1 = L.word_embedding_forward(x, p["W_embed"])
        h, c2 = fwd(emb, np.zeros((N, H)), p["Wx"], p["Wh"], p["b"])
        s, c3 = L.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        _, ds = L.temporal_softmax_loss(s, y, mask)
        dh = L.temporal_affine_backward(ds, c3)[0]
        demb = bwd(dh, c2)[0]
        out[name] = {
            "word_embedding_forward": lambda L=L: L.word_embedding_forward(x, p["W_embed"]),
            f"{cell}_forward": lambda fwd=fwd, emb=emb: fwd(emb, np.zeros((N, H)), p["Wx"],
                                                           p["Wh"], p["b"]),
            "temporal_affine_forward": lambda L=L, h=h: L.temporal_affine_forward(
                h, p["W_vocab"], p["b_vocab"]),
            "temporal_softmax_loss": lambda L=L, s=s: L.temporal_softmax_loss(s, y, mask),
            "temporal_affine_backward": lambda L=L, ds=ds, c3=c3:
                L.temporal_affine_backward(ds, c3),
            f"{cell}_backward": lambda bwd=bwd, dh=dh, c2=c2: bwd(dh, c2),
            "word_embedding_backward": lambda L=L, demb=demb, c1=c1:
                L.word_embedding_backward(demb, c1),
        }
    return {k: interleaved({"numpy": out["numpy"][k], "compat": out["compat"][k]}, repeat, 10)
            for k in out["numpy"]}


def conversion(N, T, D, H, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D))
    h0 = np.zeros((N, H))
    Wx, Wh = rng.standard_normal((D, 4 * H)) * 0.2, rng.standard_normal((H, 4 * H)) * 0.2
    b = np.zeros(4 * H)
    dh = rng.standard_normal((N, T, H))
    W_ih, W_hh = cs231n._torch_gates(Wx.T, H), cs231n._torch_gates(Wh.T, H)
    b_ih = cs231n._torch_gates(b, H)

    def compat():
        cs231n.lstm_backward(dh, cs231n.lstm_forward(x, h0, Wx, Wh, b)[1])

    def raw():
        fastbptt.lstm_backward(dh, fastbptt.lstm_forward(x, h0, None, W_ih, W_hh, b_ih,
                                                         np.zeros_like(b_ih),
                                                         batch_first=True)[1])
    return interleaved({"raw": raw, "compat": compat}, repeat, 10)


def steps(N, D, H, repeat):
    rng = np.random.default_rng(1)
    x, h, c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), np.zeros((N, H))
    Wx, Wh, b = (rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)),
                 np.zeros(4 * H))
    dh = rng.standard_normal((N, H))

    def numpy_step():
        cache = cs231n.lstm_step_forward(x, h, c, Wx, Wh, b)[2]
        cs231n.lstm_step_backward(dh, dh, cache)

    def cells_t1():   # the same step as a T = 1 sequence through the compiled cells
        W_ih, W_hh = cs231n._torch_gates(Wx.T, H), cs231n._torch_gates(Wh.T, H)
        b_ih = cs231n._torch_gates(b, H)
        _, cache = fastbptt.lstm_forward(x[None], h, c, W_ih, W_hh, b_ih, np.zeros_like(b_ih))
        g = fastbptt.lstm_backward(dh[None], cache, dc_n=dh)
        return (g.dx[0], g.dh0, g.dc0, cs231n._torch_gates(g.dW_ih, H).T,
                cs231n._torch_gates(g.dW_hh, H).T, cs231n._torch_gates(g.db_ih, H))
    return interleaved({"cells_t1": cells_t1, "numpy": numpy_step}, repeat, 20)


def embedding(N, T, V, D, repeat):
    rng = np.random.default_rng(2)
    words = rng.integers(0, V, (N, T))
    dout = rng.standard_normal((N, T, D))
    cache = cs231n.word_embedding_forward(words, rng.standard_normal((V, D)))[1]

    def add_at():
        dW = np.zeros((V, D))
        np.add.at(dW, words, dout)
        return dW
    def dense():
        one_hot = np.zeros((V, N * T))
        one_hot[words.ravel(), np.arange(N * T)] = 1
        return one_hot @ dout.reshape(N * T, D)

    def sparse():
        n = N * T
        one_hot = scipy.sparse.csc_array((np.ones(n), words.ravel(), np.arange(n + 1)),
                                         shape=(V, n))
        return one_hot @ dout.reshape(n, D)
    return interleaved({"add_at": add_at, "dense": dense, "sparse": sparse,
                        "shipped": lambda: cs231n.word_embedding_backward(dout, cache)},
                       repeat, 10)


def minchar_lossfun(V, H, T, repeat):
    rng = np.random.default_rng(3)
    Wxh, Whh, Why = (rng.standard_normal((H, V)) * 0.01, rng.standard_normal((H, H)) * 0.01,
                     rng.standard_normal((V, H)) * 0.01)
    bh, by, hprev = np.zeros((H, 1)), np.zeros((V, 1)), np.zeros((H, 1))
    inputs, targets = rng.integers(0, V, T).tolist(), rng.integers(0, V, T).tolist()
    eye = np.eye(H)
    args = (inputs, targets, hprev, Wxh, Whh, Why, bh, by)

    def one_hot_gemm():
        x = np.zeros((T, 1, V))
        x[np.arange(T), 0, inputs] = 1
        _, cache = fastbptt.rnn_forward(x, hprev.T, Wxh, Whh, bh[:, 0], np.zeros(H))
        return fastbptt.rnn_backward(np.ones((T, 1, H)), cache).dW_ih

    def gather():   # x_t W_ih^T with W_ih = I: the gathered columns pass straight through
        x = np.ascontiguousarray(Wxh[:, inputs].T)[:, None, :]
        _, cache = fastbptt.rnn_forward(x, hprev.T, eye, Whh, bh[:, 0], np.zeros(H))
        dA = fastbptt.rnn_backward(np.ones((T, 1, H)), cache).dx[:, 0, :]
        dWxh = np.zeros((H, V))
        np.add.at(dWxh.T, inputs, dA)
        return dWxh
    script_lossFun = _minchar_script.script_namespace(Wxh, Whh, Why, bh, by)["lossFun"]
    a = interleaved({"script": lambda: script_lossFun(*args[:3]),
                     "compat": lambda: minchar.lossFun(*args)}, repeat, 10)
    b = interleaved({"gather": gather, "one_hot_gemm": one_hot_gemm}, repeat, 10)
    return a, b


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    r = parser.parse_args().repeat
    print("\n".join(bench.machine_lines()))
    with bench.thread_limit(1):
        header("model: one training step (examples/cs231n_model.py), float64", "NumPy layers",
               "compat")
        # the example's defaults first, then larger batches and hidden sizes, and the RNN
        for cell, N, T, V, D, H in (("lstm", 2, 50, 16, 16, 32), ("lstm", 1, 50, 16, 16, 32),
                                    ("lstm", 4, 50, 16, 16, 32), ("lstm", 8, 50, 16, 16, 32),
                                    ("lstm", 8, 32, 16, 16, 64), ("rnn", 2, 50, 16, 16, 32),
                                    ("rnn", 1, 50, 16, 16, 32)):
            row(f"{cell} N={N} T={T} V={V} D={D} H={H}", model_step(cell, N, T, V, D, H, r),
                "numpy", "compat")
        for cell in ("lstm", "rnn"):
            header(f"layers: {cell}, N=2 T=50 V=16 D=16 H=32 (the example's defaults)",
                   "NumPy layers", "compat")
            for name, t in layer_parts(cell, 2, 50, 16, 16, 32, r).items():
                row(name, t, "numpy", "compat")
        header("convert: compat.cs231n.lstm forward+backward against the cells with torch-"
               "layout weights", "cells", "compat")
        for N, T, D, H in ((2, 50, 16, 32), (8, 32, 16, 64)):
            row(f"N={N} T={T} D={D} H={H}", conversion(N, T, D, H, r), "raw", "compat")
        header("step: one LSTM step forward+backward", "cells, T = 1", "NumPy step")
        for N, D, H in ((2, 16, 32), (8, 16, 64), (100, 256, 512)):
            row(f"N={N} D={D} H={H}", steps(N, D, H, r), "cells_t1", "numpy")
        print("\n### embed: word_embedding_backward, us (shipped: dense one-hot up to "
              "V*N*T = 65536, else sparse)\n\n| case | np.add.at | dense one-hot | sparse "
              "one-hot | shipped |\n|---|---:|---:|---:|---:|")
        for N, T, V, D in ((2, 50, 16, 16), (8, 32, 16, 16), (50, 17, 1004, 256)):
            t = embedding(N, T, V, D, r)
            print(f"| N={N} T={T} V={V} D={D} | " + " | ".join(
                f"{t[k] * 1e6:.1f}" for k in ("add_at", "dense", "sparse", "shipped")) + " |")
        a, b = minchar_lossfun(65, 100, 25, r)
        header("minchar: lossFun, V=65 H=100 T=25", "script", "compat")
        row("lossFun", a, "script", "compat")
        header("minchar: input projection inside the cells", "gather + I", "one-hot GEMM")
        row("forward+backward", b, "gather", "one_hot_gemm")


if __name__ == "__main__":
    main()
