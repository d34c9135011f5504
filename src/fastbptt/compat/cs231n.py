"""The recurrent layer functions of the Stanford CS231n assignments (rnn_layers.py), with
their names, signatures, shapes and return values, running on fastbptt's compiled cells:

    from fastbptt.compat import cs231n as layers     # instead of: from rnn_layers import *

Their conventions, kept here:
    x (N, T, D) batch-major, h0 (N, H), h (N, T, H);  Wx (D, G*H), Wh (H, G*H), b (G*H,)
    RNN:  h_t = tanh(x_t Wx + h_{t-1} Wh + b)
    LSTM: a = x_t Wx + h_{t-1} Wh + b (N, 4H), blocks [i f o g];
          c_t = sigmoid(a_f) c_{t-1} + sigmoid(a_i) tanh(a_g),  h_t = sigmoid(a_o) tanh(c_t)
float64 and float32 both kept (the dtype of x decides; mixed dtypes are an error).
Caches are opaque: only their own backward reads them.

How: the sequence functions are thin adapters onto fastbptt.rnn_forward / lstm_forward
(PyTorch layout: W_ih (G*H, D) = Wx^T, gate blocks [i f g o], batch_first=True reads
(N, T, D) without copying). Per call that costs one transposed (and, for the LSTM, gate-
permuted) copy of Wx, Wh and b going in and of their gradients coming out, O((D+H) G H),
against the O(T N (D+H) G H) of the recurrence. The step functions have no time loop to
compile and stay NumPy (measured as fast as a T = 1 call of the cells at small sizes and
1.3-1.5x faster at larger ones: bench/RESULTS.md). word_embedding_backward sums rows with
a (V, N*T) one-hot product (dense when small, else sparse) instead of np.add.at;
temporal_affine and temporal_softmax_loss are single NumPy GEMMs / passes.
"""
import numpy as np
import scipy.sparse

import fastbptt
from fastbptt.runtime.validation import as_float_array

_LSTM_GATES = 4


# ------------------------------------------------------------------ argument checks

def _check_shape(name, array, expected, described):
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {described} = {expected}, got {array.shape}")


def _weights(x_name, x, G, Wx, Wh, b):
    """Validate Wx (D, G*H), Wh (H, G*H), b (G*H,) against x (..., D); returns them and H."""
    dtype, D = x.dtype, x.shape[-1]
    Wh = as_float_array("Wh", Wh, 2, dtype)
    H = Wh.shape[0]
    gh = "H" if G == 1 else f"{G}*H"
    _check_shape("Wh", Wh, (H, G * H), f"(H, {gh})")
    Wx = as_float_array("Wx", Wx, 2, dtype)
    if Wx.shape != (D, G * H):
        raise ValueError(f"Wx must have shape (D, {gh}) = {(D, G * H)} (D from {x_name}, H "
                         f"from Wh), got {Wx.shape}")
    b = as_float_array("b", b, 1, dtype)
    _check_shape("b", b, (G * H,), f"({gh},)")
    return Wx, Wh, b, H


def _state(name, value, N, H, dtype):
    value = as_float_array(name, value, 2, dtype)
    _check_shape(name, value, (N, H), "(N, H)")
    return value


def _like(name, value, expected, dtype):
    value = as_float_array(name, value, len(expected), dtype)
    _check_shape(name, value, expected, "like the forward output")
    return value


def _cache_of(cache, kind, caller):
    if not isinstance(cache, _Cache) or cache.kind != kind:
        raise TypeError(f"cache must come from fastbptt.compat.cs231n.{kind}_forward "
                        f"(for {caller}), got {type(cache).__name__}"
                        + (f" of {cache.kind}_forward" if isinstance(cache, _Cache) else ""))
    return cache.data


class _Cache:
    """Opaque: what a *_forward function hands its own *_backward."""
    __slots__ = ("kind", "data")

    def __init__(self, kind, data):
        self.kind = kind
        self.data = data


# ------------------------------------------------------------------ layout conversion

def _torch_gates(a, H):
    """CS231n's gate blocks [i f o g] along a's first axis -> PyTorch's [i f g o] (a new
    array); the swap of the last two blocks is its own inverse, so it converts back too."""
    return np.concatenate((a[:2 * H], a[3 * H:], a[2 * H:3 * H]))


def _to_torch(G, Wx, Wh, b, H):
    """W_ih (G*H, D), W_hh (G*H, H), b_ih (G*H,) from Wx (D, G*H), Wh (H, G*H), b."""
    if G == 1:
        return np.ascontiguousarray(Wx.T), np.ascontiguousarray(Wh.T), b
    return _torch_gates(Wx.T, H), _torch_gates(Wh.T, H), _torch_gates(b, H)


def _from_torch(G, dW_ih, dW_hh, db_ih, H):
    """dWx (D, G*H), dWh (H, G*H), db (G*H,) from the cells' gradients, C-contiguous."""
    if G == 1:
        return np.ascontiguousarray(dW_ih.T), np.ascontiguousarray(dW_hh.T), db_ih
    return (np.ascontiguousarray(_torch_gates(dW_ih, H).T),
            np.ascontiguousarray(_torch_gates(dW_hh, H).T), _torch_gates(db_ih, H))


# ------------------------------------------------------------------ vanilla RNN

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One tanh RNN step: next_h = tanh(x Wx + prev_h Wh + b).

    x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,). Returns next_h (N, H), cache.
    """
    x = as_float_array("x", x, 2)
    Wx, Wh, b, H = _weights("x", x, 1, Wx, Wh, b)
    prev_h = _state("prev_h", prev_h, x.shape[0], H, x.dtype)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, _Cache("rnn_step", (x, prev_h, Wx, Wh, next_h))


def rnn_step_backward(dnext_h, cache):
    """Gradients of one RNN step. dnext_h (N, H).
    Returns dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,)."""
    x, prev_h, Wx, Wh, next_h = _cache_of(cache, "rnn_step", "rnn_step_backward")
    dnext_h = _like("dnext_h", dnext_h, next_h.shape, next_h.dtype)
    da = dnext_h * (1 - next_h * next_h)            # (N, H): tanh' = 1 - tanh^2
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """A tanh RNN over a whole sequence. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H),
    b (H,). Returns h (N, T, H), every hidden state, and a cache for rnn_backward."""
    x = as_float_array("x", x, 3)
    Wx, Wh, b, H = _weights("x", x, 1, Wx, Wh, b)
    h0 = _state("h0", h0, x.shape[0], H, x.dtype)
    W_ih, W_hh, b_ih = _to_torch(1, Wx, Wh, b, H)
    h, cache = fastbptt.rnn_forward(x, h0, W_ih, W_hh, b_ih, np.zeros_like(b_ih),
                                    nonlinearity="tanh", batch_first=True)
    return h, _Cache("rnn", (cache, h.shape, H))


def rnn_backward(dh, cache):
    """Backpropagation through the whole sequence. dh (N, T, H), dL/dh at every step.
    Returns dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,)."""
    inner, shape, H = _cache_of(cache, "rnn", "rnn_backward")
    dh = _like("dh", dh, shape, inner.args.dtype)
    g = fastbptt.rnn_backward(dh, inner)
    return (g.dx, g.dh0) + _from_torch(1, g.dW_ih, g.dW_hh, g.db_ih, H)


# ------------------------------------------------------------------ LSTM

def _sigmoid(a):
    """1 / (1 + exp(-a)) without overflow for large |a|."""
    z = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step. x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,),
    gate blocks [i f o g]. Returns next_h, next_c (N, H), cache."""
    x = as_float_array("x", x, 2)
    Wx, Wh, b, H = _weights("x", x, _LSTM_GATES, Wx, Wh, b)
    prev_h = _state("prev_h", prev_h, x.shape[0], H, x.dtype)
    prev_c = _state("prev_c", prev_c, x.shape[0], H, x.dtype)
    a = x @ Wx + prev_h @ Wh + b                      # (N, 4H)
    ifo = _sigmoid(a[:, :3 * H])
    g = np.tanh(a[:, 3 * H:])
    i, f, o = ifo[:, :H], ifo[:, H:2 * H], ifo[:, 2 * H:]
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, _Cache("lstm_step", (x, prev_h, prev_c, Wx, Wh, ifo, g, tanh_c))


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one LSTM step. dnext_h, dnext_c (N, H).
    Returns dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)."""
    x, prev_h, prev_c, Wx, Wh, ifo, g, tanh_c = _cache_of(cache, "lstm_step",
                                                           "lstm_step_backward")
    N, H = prev_h.shape
    dnext_h = _like("dnext_h", dnext_h, (N, H), x.dtype)
    dnext_c = _like("dnext_c", dnext_c, (N, H), x.dtype)
    i, f, o = ifo[:, :H], ifo[:, H:2 * H], ifo[:, 2 * H:]
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)   # (N, H)
    da = np.empty((N, 4 * H), x.dtype)                    # blocks [i f o g]
    da[:, :H] = dc * g
    da[:, H:2 * H] = dc * prev_c
    da[:, 2 * H:3 * H] = dnext_h * tanh_c
    da[:, :3 * H] *= ifo * (1 - ifo)                      # sigmoid' = s (1 - s)
    da[:, 3 * H:] = dc * i * (1 - g * g)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over a whole sequence, c0 = 0. x (N, T, D), h0 (N, H), Wx (D, 4H),
    Wh (H, 4H), b (4H,). Returns h (N, T, H) and a cache for lstm_backward."""
    x = as_float_array("x", x, 3)
    Wx, Wh, b, H = _weights("x", x, _LSTM_GATES, Wx, Wh, b)
    h0 = _state("h0", h0, x.shape[0], H, x.dtype)
    W_ih, W_hh, b_ih = _to_torch(_LSTM_GATES, Wx, Wh, b, H)
    h, cache = fastbptt.lstm_forward(x, h0, None, W_ih, W_hh, b_ih, np.zeros_like(b_ih),
                                     batch_first=True)
    return h, _Cache("lstm", (cache, h.shape, H))


def lstm_backward(dh, cache):
    """Backpropagation through the whole sequence. dh (N, T, H).
    Returns dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)."""
    inner, shape, H = _cache_of(cache, "lstm", "lstm_backward")
    dh = _like("dh", dh, shape, inner.args.dtype)
    g = fastbptt.lstm_backward(dh, inner)
    return (g.dx, g.dh0) + _from_torch(_LSTM_GATES, g.dW_ih, g.dW_hh, g.db_ih, H)


# ------------------------------------------------------------------ the other layers

def _indices(name, value, shape=None):
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape (N, T) = {shape}, got {arr.shape}")
    return arr


def word_embedding_forward(x, W):
    """out[n, t] = W[x[n, t]]. x (N, T) ints in [0, V), W (V, D). Returns out (N, T, D),
    cache."""
    W = as_float_array("W", W, 2)
    x = _indices("x", x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, T), got shape {x.shape}")
    V = W.shape[0]
    if x.size and (x.min() < 0 or x.max() >= V):
        raise ValueError(f"x must lie in [0, V) = [0, {V}) (V from W), got values from "
                         f"{x.min()} to {x.max()}")
    return W[x], _Cache("word_embedding", (x, W.shape, W.dtype))


# Below this many entries of the one-hot matrix (V x N*T) it is built dense: building a
# scipy.sparse matrix costs tens of microseconds of Python, more than the dense product
# at small sizes (bench/RESULTS.md).
_DENSE_ONE_HOT_MAX = 1 << 16


def word_embedding_backward(dout, cache):
    """dW (V, D): dout's rows summed into the rows of the words they came from.

    As a product: dW = S dout, S (V, N*T) the one-hot matrix S[x_k, k] = 1; dense when
    small, else sparse (CSC with one entry per column, so its index arrays are x itself
    and 0..N*T). Both measured faster than np.add.at (bench/RESULTS.md).
    """
    x, (V, D), dtype = _cache_of(cache, "word_embedding", "word_embedding_backward")
    dout = _like("dout", dout, x.shape + (D,), dtype)
    n = x.size
    if V * n <= _DENSE_ONE_HOT_MAX:
        one_hot = np.zeros((V, n), dtype)
        one_hot[x.ravel(), np.arange(n)] = 1
        return one_hot @ dout.reshape(n, D)
    one_hot = scipy.sparse.csc_array((np.ones(n, dtype), x.ravel(), np.arange(n + 1)),
                                     shape=(V, n))
    return np.asarray(one_hot @ dout.reshape(n, D), dtype=dtype)


def temporal_affine_forward(x, w, b):
    """out[n, t] = x[n, t] w + b. x (N, T, D), w (D, M), b (M,). Returns out (N, T, M),
    cache."""
    x = as_float_array("x", x, 3)
    N, T, D = x.shape
    w = as_float_array("w", w, 2, x.dtype)
    if w.shape[0] != D:
        raise ValueError(f"w must have shape (D, M) with D = {D} (from x), got {w.shape}")
    M = w.shape[1]
    b = as_float_array("b", b, 1, x.dtype)
    _check_shape("b", b, (M,), "(M,)")
    out = x.reshape(N * T, D) @ w                     # one GEMM for every step
    out += b
    return out.reshape(N, T, M), _Cache("temporal_affine", (x, w))


def temporal_affine_backward(dout, cache):
    """dout (N, T, M). Returns dx (N, T, D), dw (D, M), db (M,)."""
    x, w = _cache_of(cache, "temporal_affine", "temporal_affine_backward")
    N, T, D = x.shape
    M = w.shape[1]
    dout = _like("dout", dout, (N, T, M), x.dtype).reshape(N * T, M)
    return ((dout @ w.T).reshape(N, T, D), x.reshape(N * T, D).T @ dout,
            dout.sum(axis=0))


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy over a vocabulary at every step, summed over the steps where
    mask is true and divided by N.

    x (N, T, V) scores, y (N, T) ints in [0, V), mask (N, T) bool.
    Returns loss (a scalar of x's dtype) and dx (N, T, V).
    """
    x = as_float_array("x", x, 3)
    N, T, V = x.shape
    y = _indices("y", y, (N, T))
    if y.size and (y.min() < 0 or y.max() >= V):
        raise ValueError(f"y must lie in [0, V) = [0, {V}) (V from x), got values from "
                         f"{y.min()} to {y.max()}")
    mask = np.asarray(mask)
    if mask.shape != (N, T):
        raise ValueError(f"mask must have shape (N, T) = {(N, T)}, got {mask.shape}")
    rows = np.arange(N * T)
    y_flat = y.reshape(N * T)
    keep = mask.reshape(N * T).astype(x.dtype)
    # p = softmax(x) row-wise, computed in place in one buffer; log p[y] = s[y] - log sum
    probs = x.reshape(N * T, V) - x.reshape(N * T, V).max(axis=1, keepdims=True)
    log_p_y = probs[rows, y_flat].copy()
    np.exp(probs, out=probs)
    total = probs.sum(axis=1)
    log_p_y -= np.log(total)
    loss = -np.dot(keep, log_p_y) / N
    # dx = mask (p - onehot(y)) / N
    probs *= (keep / (total * N))[:, None]
    probs[rows, y_flat] -= keep / N
    if verbose:
        print("dx_flat: ", probs.shape)
    return loss, probs.reshape(N, T, V)


__all__ = ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
           "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
           "word_embedding_forward", "word_embedding_backward", "temporal_affine_forward",
           "temporal_affine_backward", "temporal_softmax_loss"]
