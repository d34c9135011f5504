"""The recurrent layer functions of the Stanford CS231n assignments (rnn_layers.py), with
their names, signatures, shapes and return values, running on fastbptt's compiled cells::

    from fastbptt.compat import cs231n as layers     # instead of: from rnn_layers import *

Their conventions, kept here::

    x (N, T, D) batch-major, h0 (N, H), h (N, T, H);  Wx (D, G*H), Wh (H, G*H), b (G*H,)
    RNN:  h_t = tanh(x_t Wx + h_{t-1} Wh + b)
    LSTM: a = x_t Wx + h_{t-1} Wh + b (N, 4H), blocks [i f o g];
          c_t = sigmoid(a_f) c_{t-1} + sigmoid(a_i) tanh(a_g),  h_t = sigmoid(a_o) tanh(c_t)

What the originals' NumPy accepts is accepted (fastbptt.compat._args): mixed float32 and
float64 and integer arguments promote as NumPy promotes them (the result dtype is computed
once, then everything runs in it); the step functions broadcast x, prev_h, prev_c and b as
NumPy broadcasts `x.dot(Wx) + prev_h.dot(Wh) + b` (a 1-D x against an (N, H) prev_h, as
CaptioningRNN.sample does with its start token), and their gradients come back in each
input's shape; word_embedding_forward takes a Python int or an index array of any shape
(out: x.shape + (D,)); upstream gradients broadcast to their output's shape. The caches
of rnn_forward / lstm_forward are, as the originals' are, lists of the step caches
(cache[t] goes to rnn_step_backward), and rnn_backward / lstm_backward also take such a
list. What still differs from the originals, and why: docs/guide/dropin.md, "Drop-in for
NumPy models".

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
import collections.abc
from typing import NamedTuple

import numpy as np
import scipy.sparse

import fastbptt
from fastbptt.cells.spec import LSTM as LSTM_SPEC
from fastbptt.compat._args import asarray, broadcast_to, convert, indices, result_dtype, unbroadcast
from fastbptt.runtime.validation import as_float_array

_LSTM_GATES = LSTM_SPEC.gates


# ------------------------------------------------------------------ argument checks

def _check_shape(name, array, expected, described):
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {described} = {expected}, got {array.shape}")


def _gh(G):
    return "H" if G == 1 else f"{G}*H"


def _sequence_args(caller, G, x, h0, Wx, Wh, b):
    """The arguments of rnn_forward / lstm_forward in their one result dtype: x (N, T, D),
    Wx (D, G*H), Wh (H, G*H), b broadcast to (G*H,), h0 broadcast to (N, H), all
    C-contiguous; and h0's own shape (for dh0)."""
    dtype = result_dtype(caller, x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    x = as_float_array("x", convert("x", x, dtype), 3)
    N, _, D = x.shape
    Wh = as_float_array("Wh", convert("Wh", Wh, dtype), 2)
    H = Wh.shape[0]
    _check_shape("Wh", Wh, (H, G * H), f"(H, {_gh(G)})")
    Wx = as_float_array("Wx", convert("Wx", Wx, dtype), 2)
    if Wx.shape != (D, G * H):
        raise ValueError(f"Wx must have shape (D, {_gh(G)}) = {(D, G * H)} (D from x, H "
                         f"from Wh), got {Wx.shape}")
    b = broadcast_to("b", convert("b", b, dtype), (G * H,), f"({_gh(G)},)")
    b = as_float_array("b", b, 1)
    h0 = convert("h0", h0, dtype)
    h0_shape = h0.shape
    h0 = as_float_array("h0", broadcast_to("h0", h0, (N, H), "(N, H)"), 2)
    return x, h0, Wx, Wh, b, H, h0_shape


def _step_args(caller, G, **values):
    """The arguments of a step function in their one result dtype (NumPy arrays, any
    layout); checks Wx (D, G*H), Wh (H, G*H), x (..., D), prev_h (..., H) and that x Wx,
    prev_h Wh and b broadcast. Returns the converted arrays (by name), H and the batch
    shape of the pre-activation a = x Wx + prev_h Wh + b, (..., G*H)."""
    dtype = result_dtype(caller, **values)
    a = {name: convert(name, value, dtype) for name, value in values.items()}
    x, prev_h, Wx, Wh, b = a["x"], a["prev_h"], a["Wx"], a["Wh"], a["b"]
    gh = _gh(G)
    if Wh.ndim != 2 or Wh.shape[1] != G * Wh.shape[0]:
        raise ValueError(f"Wh must have shape (H, {gh}), got {Wh.shape}")
    H = Wh.shape[0]
    if x.ndim == 0:
        raise ValueError("x must have shape (..., D) (x.dot(Wx)), got a scalar")
    D = x.shape[-1]
    if Wx.shape != (D, G * H):
        raise ValueError(f"Wx must have shape (D, {gh}) = {(D, G * H)} (D from x, H from "
                         f"Wh), got {Wx.shape}")
    if prev_h.ndim == 0 or prev_h.shape[-1] != H:
        raise ValueError(f"prev_h must have shape (..., H) with H = {H} (from Wh), got "
                         f"{prev_h.shape}")
    if x.shape[:-1] == prev_h.shape[:-1] and b.shape == (G * H,):   # the course's shapes
        return a, H, x.shape[:-1]
    try:
        shape = np.broadcast_shapes(x.shape[:-1] + (G * H,), prev_h.shape[:-1] + (G * H,),
                                    b.shape)
    except ValueError:
        raise ValueError(f"x {x.shape}, prev_h {prev_h.shape} and b {b.shape} must broadcast "
                         f"in x.dot(Wx) + prev_h.dot(Wh) + b, (..., {gh})") from None
    return a, H, shape[:-1]


def _upstream(caller, name, value, shape, described, cache_dtype):
    """An upstream gradient in the result dtype of it and the cache, broadcast to the
    shape of the output it is the gradient of (a read-only view)."""
    dtype = result_dtype(caller, **{name: value, "the cache": cache_dtype})
    return broadcast_to(name, convert(name, value, dtype), shape, described)


# ------------------------------------------------------------------ caches

class RNNStepCache(NamedTuple):
    """What rnn_step_forward returns for rnn_step_backward: the course's tuple."""
    x: np.ndarray
    prev_h: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    next_h: np.ndarray


class LSTMStepCache(NamedTuple):
    """What lstm_step_forward returns for lstm_step_backward (i, f, o, g: the activated
    gates)."""
    x: np.ndarray
    prev_h: np.ndarray
    prev_c: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    i: np.ndarray
    f: np.ndarray
    o: np.ndarray
    g: np.ndarray
    next_c: np.ndarray


class SequenceCache(collections.abc.Sequence):
    """The cache of rnn_forward / lstm_forward.

    Their own backward reads the compiled cell's cache inside it. To everything else it is
    what the originals' cache is, a list of the T step caches: len(cache) == T, cache[t]
    (and slices, iteration) give what the step function would have returned for step t,
    which the step backward functions accept. They are built on first access, once: the
    RNN's from the states the forward computed, the LSTM's by recomputing every step's
    gates in one product a = x Wx + h_prev Wh + b (N, T, 4H) from those states and its
    cell states by c_t = f_t c_{t-1} + i_t g_t (equal to the compiled ones to rounding).
    """
    __slots__ = ("kind", "forward", "make_steps", "inner", "inputs", "h0_shape", "h", "_steps")

    def __init__(self, forward, make_steps, inner, inputs, h0_shape, h):
        self.kind = inner.spec.name     # "rnn" or "lstm": the compiled cell's CellSpec
        self.forward = forward          # the module's function that made it (rnn_forward)
        self.make_steps = make_steps    # SequenceCache -> the list of step caches
        self.inner = inner          # the compiled cell's cache
        self.inputs = inputs        # x, h0 (N, H), Wx, Wh, b as the forward ran them
        self.h0_shape = h0_shape    # h0's shape as given (dh0 comes back in it)
        self.h = h                  # (N, T, H), a private copy of the forward's output
        self._steps = None

    @property
    def dtype(self):
        return self.h.dtype

    def __len__(self):
        return self.h.shape[1]

    def __getitem__(self, index):
        if self._steps is None:
            self._steps = self.make_steps(self)
        return self._steps[index]

    def __repr__(self):
        N, T, H = self.h.shape
        return f"<{self.kind}_forward cache: {T} steps, N={N}, H={H}, {self.dtype}>"


def _rnn_steps(seq):
    x, h0, Wx, Wh, _ = seq.inputs
    h = seq.h
    return [RNNStepCache(x[:, t], h0 if t == 0 else h[:, t - 1], Wx, Wh, h[:, t])
            for t in range(len(seq))]


def _lstm_steps(seq):
    x, h0, Wx, Wh, b = seq.inputs
    h = seq.h
    N, T, H = h.shape
    if T == 0:
        return []
    h_prev = np.concatenate((h0[:, None], h[:, :-1]), axis=1)     # (N, T, H): h_{t-1}
    a = x @ Wx + h_prev @ Wh + b                                    # (N, T, 4H)
    ifo = _sigmoid(a[..., :3 * H])
    g = np.tanh(a[..., 3 * H:])
    i, f, o = ifo[..., :H], ifo[..., H:2 * H], ifo[..., 2 * H:]
    c = np.zeros((N, T + 1, H), h.dtype)                            # c[:, 0] = c0 = 0
    for t in range(T):
        c[:, t + 1] = f[:, t] * c[:, t] + i[:, t] * g[:, t]
    return [LSTMStepCache(x[:, t], h_prev[:, t], c[:, t], Wx, Wh, i[:, t], f[:, t],
                          o[:, t], g[:, t], c[:, t + 1]) for t in range(T)]


class _Cache:
    """Opaque: what the embedding and affine forward functions hand their backward."""
    __slots__ = ("kind", "data")

    def __init__(self, kind, data):
        self.kind = kind
        self.data = data


def _describe(cache):
    if isinstance(cache, _Cache):
        return f"_Cache of {cache.kind}_forward"
    if isinstance(cache, SequenceCache):
        return f"the cache of {cache.kind}_forward"
    steps = {RNNStepCache: "rnn_step_forward", LSTMStepCache: "lstm_step_forward"}
    if type(cache) in steps:
        return f"the cache of {steps[type(cache)]}"
    return type(cache).__name__


def _cache_of(cache, kind, caller):
    if not isinstance(cache, _Cache) or cache.kind != kind:
        raise TypeError(f"cache must come from fastbptt.compat.cs231n.{kind}_forward "
                        f"(for {caller}), got {_describe(cache)}")
    return cache.data


def _step_cache(cache, cls, kind, caller):
    if not isinstance(cache, cls):
        raise TypeError(f"cache must come from fastbptt.compat.cs231n.{kind}_forward "
                        f"(for {caller}), got {_describe(cache)}")
    return cache


def _step_list(cache, cls):
    """Whether cache is a non-empty list (or tuple) of step caches of type cls."""
    return (isinstance(cache, (list, tuple)) and not isinstance(cache, cls) and len(cache) > 0
            and all(isinstance(c, cls) for c in cache))


def _sequence_cache(cache, kind, caller, step_kind):
    if not isinstance(cache, SequenceCache) or cache.kind != kind:
        raise TypeError(f"cache must come from fastbptt.compat.cs231n.{kind}_forward, or be "
                        f"a list of {step_kind}_forward caches (for {caller}), got "
                        f"{_describe(cache)}")
    return cache


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


# ------------------------------------------------------------------ step gradients

def _rows(a, batch):
    """a (..., K) broadcast to batch + (K,) as rows (M, K), M = prod(batch)."""
    if a.shape[:-1] != batch:
        a = np.broadcast_to(a, batch + a.shape[-1:])
    return a.reshape(-1, a.shape[-1])


def _affine_grads(da, x, prev_h, Wx, Wh):
    """Through a = x Wx + prev_h Wh + b, da (..., G*H): dx, dprev_h in their inputs'
    shapes (summed over the axes NumPy broadcast), dWx = X^T dA, dWh = H^T dA (X, H, dA:
    the broadcast rows (M, .)), db = the column sums of dA, (G*H,) as the originals'
    da.sum(axis=0)."""
    batch = da.shape[:-1]
    rows = da.reshape(-1, da.shape[-1])
    return (unbroadcast(da @ Wx.T, x.shape), unbroadcast(da @ Wh.T, prev_h.shape),
            _rows(x, batch).T @ rows, _rows(prev_h, batch).T @ rows, rows.sum(axis=0))


# ------------------------------------------------------------------ vanilla RNN

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One tanh RNN step: next_h = tanh(x Wx + prev_h Wh + b).

    x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,); x, prev_h and b may be any
    shapes that broadcast there, as in NumPy (x (D,) for one input shared by every row).
    Returns next_h (the broadcast shape, (N, H)) and a cache for rnn_step_backward.
    """
    a, _, _ = _step_args("rnn_step_forward", 1, x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    x, prev_h, Wx, Wh = a["x"], a["prev_h"], a["Wx"], a["Wh"]
    next_h = np.tanh(prev_h @ Wh + x @ Wx + a["b"])
    return next_h, RNNStepCache(x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Gradients of one RNN step. dnext_h (N, H), or anything that broadcasts to next_h.
    Returns dx (x's shape), dprev_h (prev_h's shape), dWx (D, H), dWh (H, H), db (H,)."""
    x, prev_h, Wx, Wh, next_h = _step_cache(cache, RNNStepCache, "rnn_step",
                                            "rnn_step_backward")
    dnext_h = _upstream("rnn_step_backward", "dnext_h", dnext_h, next_h.shape,
                        "next_h's shape", next_h.dtype)
    da = dnext_h * (1 - next_h * next_h)            # (N, H): tanh' = 1 - tanh^2
    return _affine_grads(da, x, prev_h, Wx, Wh)


def rnn_forward(x, h0, Wx, Wh, b):
    """A tanh RNN over a whole sequence. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H),
    b (H,). Returns h (N, T, H), every hidden state, and the cache for rnn_backward (a
    list of T step caches to anything else, see SequenceCache)."""
    x, h0, Wx, Wh, b, H, h0_shape = _sequence_args("rnn_forward", 1, x, h0, Wx, Wh, b)
    W_ih, W_hh, b_ih = _to_torch(1, Wx, Wh, b, H)
    h, cache = fastbptt.rnn_forward(x, h0, W_ih, W_hh, b_ih, np.zeros_like(b_ih),
                                    nonlinearity="tanh", batch_first=True)
    return h, SequenceCache(rnn_forward, _rnn_steps, cache, (x, h0, Wx, Wh, b), h0_shape, h.copy())


def rnn_backward(dh, cache):
    """Backpropagation through the whole sequence. dh (N, T, H), dL/dh at every step (or
    anything that broadcasts to it); cache from rnn_forward, or a list of T
    rnn_step_forward caches (then the steps run in NumPy, as the originals' loop).
    Returns dx (N, T, D), dh0 (h0's shape), dWx (D, H), dWh (H, H), db (H,)."""
    if _step_list(cache, RNNStepCache):
        return _loop_backward("rnn_backward", dh, cache)
    seq = _sequence_cache(cache, "rnn", "rnn_backward", "rnn_step")
    inner, dh = _backward_args("rnn_backward", dh, seq)
    g = fastbptt.rnn_backward(dh, inner)
    return (g.dx, unbroadcast(g.dh0, seq.h0_shape)) + _from_torch(1, g.dW_ih, g.dW_hh,
                                                                   g.db_ih, seq.h.shape[2])


def _backward_args(caller, dh, seq):
    """The compiled cache to run backward on and dh (C-contiguous) in the result dtype of
    dh and the cache. A dh wider than the cache (float64 into a float32 forward) reruns
    the forward in that dtype, so the compiled backward runs in it, as the originals'
    arithmetic would."""
    dh = _upstream(caller, "dh", dh, seq.h.shape, "h's shape (N, T, H)", seq.dtype)
    inner = seq.inner
    if dh.dtype != seq.dtype:
        inner = seq.forward(*(a.astype(dh.dtype) for a in seq.inputs))[1].inner
    return inner, as_float_array("dh", dh, 3)


def _loop_backward(caller, dh, caches):
    """The originals' backward loop over a list of step caches, in NumPy: step t gets
    dh[:, t] plus the gradient carried back from step t+1; dx stacked, weights summed."""
    T = len(caches)
    dh = asarray("dh", dh)
    if dh.ndim != 3 or dh.shape[1] != T:
        raise ValueError(f"dh must have shape (N, T, H) with T = {T} (the length of the "
                         f"list of step caches), got {dh.shape}")
    lstm = isinstance(caches[0], LSTMStepCache)
    dxs, sums = [None] * T, None
    carry_h, carry_c = 0, 0          # nothing reaches the last step from later ones
    for t in reversed(range(T)):
        if lstm:
            dxs[t], carry_h, carry_c, *d = lstm_step_backward(dh[:, t] + carry_h, carry_c,
                                                              caches[t])
        else:
            dxs[t], carry_h, *d = rnn_step_backward(dh[:, t] + carry_h, caches[t])
        sums = d if sums is None else [s + e for s, e in zip(sums, d)]
    try:
        dx = np.stack(dxs, axis=1)
    except ValueError:
        raise ValueError(f"{caller}: the step caches' inputs x must all have one shape "
                         f"(N, D) to stack dx (N, T, D), got "
                         f"{sorted({c.x.shape for c in caches})}") from None
    return (dx, carry_h, *sums)


# ------------------------------------------------------------------ LSTM

def _sigmoid(a):
    """1 / (1 + exp(-a)) without overflow for large |a|."""
    z = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step. x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,),
    gate blocks [i f o g]; x, prev_h, prev_c and b may be any shapes that broadcast there
    (the gates are the last axis's blocks). Returns next_h, next_c (N, H), cache."""
    a, H, batch = _step_args("lstm_step_forward", _LSTM_GATES, x=x, prev_h=prev_h,
                             prev_c=prev_c, Wx=Wx, Wh=Wh, b=b)
    x, prev_h, prev_c, Wx, Wh = a["x"], a["prev_h"], a["prev_c"], a["Wx"], a["Wh"]
    try:
        if prev_c.shape != batch + (H,):
            np.broadcast_shapes(batch + (H,), prev_c.shape)
    except ValueError:
        raise ValueError(f"prev_c must broadcast against the gates' shape {batch + (H,)} "
                         f"(in f * prev_c), got {prev_c.shape}") from None
    act = prev_h @ Wh + x @ Wx + a["b"]                # (N, 4H)
    ifo = _sigmoid(act[..., :3 * H])
    g = np.tanh(act[..., 3 * H:])
    i, f, o = ifo[..., :H], ifo[..., H:2 * H], ifo[..., 2 * H:]
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, LSTMStepCache(x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one LSTM step. dnext_h, dnext_c (N, H), or anything that broadcasts
    to next_h. Returns dx, dprev_h, dprev_c (their inputs' shapes), dWx (D, 4H),
    dWh (H, 4H), db (4H,)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = _step_cache(
        cache, LSTMStepCache, "lstm_step", "lstm_step_backward")
    dnext_h, dnext_c = (_upstream("lstm_step_backward", name, value, next_c.shape,
                                  "next_h's shape", next_c.dtype)
                        for name, value in (("dnext_h", dnext_h), ("dnext_c", dnext_c)))
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)     # (N, H): dL/dc_t in all
    gates = i.shape                 # prev_c may have broadcast the gates: sum back to them
    di = unbroadcast(dc * g, gates)
    df = unbroadcast(dc * prev_c, gates)
    do = unbroadcast(dnext_h * tanh_c, gates)
    dg = unbroadcast(dc * i, gates)
    # blocks [i f o g] of dL/da: sigmoid' = s (1 - s), tanh' = 1 - tanh^2
    da = np.concatenate((di * (i * (1 - i)), df * (f * (1 - f)), do * (o * (1 - o)),
                         dg * (1 - g * g)), axis=-1)
    dx, dprev_h, dWx, dWh, db = _affine_grads(da, x, prev_h, Wx, Wh)
    return dx, dprev_h, unbroadcast(dc * f, prev_c.shape), dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over a whole sequence, c0 = 0. x (N, T, D), h0 (N, H), Wx (D, 4H),
    Wh (H, 4H), b (4H,). Returns h (N, T, H) and the cache for lstm_backward (a list of
    T step caches to anything else, see SequenceCache)."""
    x, h0, Wx, Wh, b, H, h0_shape = _sequence_args("lstm_forward", _LSTM_GATES, x, h0, Wx,
                                                   Wh, b)
    W_ih, W_hh, b_ih = _to_torch(_LSTM_GATES, Wx, Wh, b, H)
    h, cache = fastbptt.lstm_forward(x, h0, None, W_ih, W_hh, b_ih, np.zeros_like(b_ih),
                                     batch_first=True)
    return h, SequenceCache(lstm_forward, _lstm_steps, cache, (x, h0, Wx, Wh, b), h0_shape,
                            h.copy())


def lstm_backward(dh, cache):
    """Backpropagation through the whole sequence. dh (N, T, H) (or anything that
    broadcasts to it); cache from lstm_forward, or a list of T lstm_step_forward caches
    (then the steps run in NumPy, as the originals' loop).
    Returns dx (N, T, D), dh0 (h0's shape), dWx (D, 4H), dWh (H, 4H), db (4H,)."""
    if _step_list(cache, LSTMStepCache):
        return _loop_backward("lstm_backward", dh, cache)
    seq = _sequence_cache(cache, "lstm", "lstm_backward", "lstm_step")
    inner, dh = _backward_args("lstm_backward", dh, seq)
    g = fastbptt.lstm_backward(dh, inner)
    return (g.dx, unbroadcast(g.dh0, seq.h0_shape)) + _from_torch(
        _LSTM_GATES, g.dW_ih, g.dW_hh, g.db_ih, seq.h.shape[2])


# ------------------------------------------------------------------ the other layers

def _float_matrix(caller, name, value):
    """A 2-D float32/float64 array whose dtype the result keeps (no arithmetic
    promotes it: W[x] is W's dtype)."""
    dtype = result_dtype(caller, ufunc=False, **{name: value})
    return as_float_array(name, convert(name, value, dtype), 2, contiguous=False)


def word_embedding_forward(x, W):
    """out = W[x]: x a Python int or an int array of any shape (N, T) with entries in
    [-V, V) (negative ones count from the end, as in NumPy), W (V, D).
    Returns out (x.shape + (D,), W's dtype) and a cache."""
    W = _float_matrix("word_embedding_forward", "W", W)
    x = indices("x", x, W.shape[0], "W")
    return W[x], _Cache("word_embedding", (x, W.shape, W.dtype))


# Below this many entries of the one-hot matrix (V x N*T) it is built dense: building a
# scipy.sparse matrix costs tens of microseconds of Python, more than the dense product
# at small sizes (bench/RESULTS.md).
_DENSE_ONE_HOT_MAX = 1 << 16


def word_embedding_backward(dout, cache):
    """dW (V, D), W's dtype: dout's rows (x.shape + (D,), or anything that broadcasts to
    it) summed into the rows of the words they came from.

    As a product: dW = S dout, S (V, n) the one-hot matrix S[x_k, k] = 1 over the n
    entries of x; dense when small, else sparse (CSC with one entry per column, so its
    index arrays are x itself and 0..n). Both measured faster than np.add.at
    (bench/RESULTS.md). The sum runs in the result dtype of dout and W, and comes back in
    W's dtype as np.add.at into np.zeros_like(W) gives it.
    """
    x, (V, D), dtype = _cache_of(cache, "word_embedding", "word_embedding_backward")
    dout = _upstream("word_embedding_backward", "dout", dout, x.shape + (D,),
                     "x.shape + (D,)", dtype)
    n = x.size
    rows = dout.reshape(n, D)
    if V * n <= _DENSE_ONE_HOT_MAX:
        one_hot = np.zeros((V, n), dout.dtype)
        one_hot[x.ravel(), np.arange(n)] = 1
        return (one_hot @ rows).astype(dtype, copy=False)
    one_hot = scipy.sparse.csc_array((np.ones(n, dout.dtype), x.ravel(), np.arange(n + 1)),
                                     shape=(V, n))
    return np.asarray(one_hot @ rows, dtype=dtype)


def temporal_affine_forward(x, w, b):
    """out[n, t] = x[n, t] w + b. x (N, T, D), w (D, M), b (M,) (or anything that
    broadcasts into (N, T, M)). Returns out (N, T, M), cache."""
    dtype = result_dtype("temporal_affine_forward", ufunc=False, x=x, w=w, b=b)
    x = as_float_array("x", convert("x", x, dtype), 3)
    N, T, D = x.shape
    w = as_float_array("w", convert("w", w, dtype), 2)
    if w.shape[0] != D:
        raise ValueError(f"w must have shape (D, M) with D = {D} (from x), got {w.shape}")
    M = w.shape[1]
    b = convert("b", b, dtype)
    _check_broadcasts_into("b", b, (N, T, M), "(N, T, M) (M from w)")
    out = (x.reshape(N * T, D) @ w).reshape(N, T, M)   # one GEMM for every step
    out += b
    return out, _Cache("temporal_affine", (x, w))


def _check_broadcasts_into(name, value, shape, described):
    """value must broadcast to `shape` without enlarging it (as in `out += value`)."""
    if value.shape == shape[-1:]:
        return
    try:
        ok = np.broadcast_shapes(value.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must broadcast to {described} = {shape}, got shape "
                         f"{value.shape}")


def temporal_affine_backward(dout, cache):
    """dout (N, T, M) (or anything that broadcasts to it). Returns dx (N, T, D),
    dw (D, M), db (M,)."""
    x, w = _cache_of(cache, "temporal_affine", "temporal_affine_backward")
    N, T, D = x.shape
    M = w.shape[1]
    dout = _upstream("temporal_affine_backward", "dout", dout, (N, T, M), "(N, T, M)",
                     x.dtype)
    dout = dout.reshape(N * T, M)
    return ((dout @ w.T).reshape(N, T, D), x.reshape(N * T, D).T @ dout,
            dout.sum(axis=0))


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy over a vocabulary at every step, summed over the steps where
    mask is true (or weighted by it) and divided by N.

    x (N, T, V) scores, y (N, T) ints in [-V, V) (negative ones count from the end, as
    NumPy indexing reads them), mask (N, T) bool or numbers. Returns loss (a NumPy scalar:
    x's dtype, promoted with mask's when mask holds numbers, as mask * log p is) and
    dx (N, T, V), x's dtype.
    """
    dtype = result_dtype("temporal_softmax_loss", x=x)
    x = as_float_array("x", convert("x", x, dtype), 3)
    N, T, V = x.shape
    y = indices("y", y, V, "x")
    if y.shape != (N, T):
        raise ValueError(f"y must have shape (N, T) = {(N, T)}, got {y.shape}")
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        mask = asarray("mask", mask)
    if mask.shape != (N, T):
        raise ValueError(f"mask must have shape (N, T) = {(N, T)}, got {mask.shape}")
    loss_dtype = dtype if mask.dtype == np.bool_ else result_dtype(
        "temporal_softmax_loss", x=dtype, mask=mask)
    rows = np.arange(N * T)
    y_flat = y.reshape(N * T)
    keep = mask.reshape(N * T).astype(dtype)
    # p = softmax(x) row-wise, computed in place in one buffer; log p[y] = s[y] - log sum
    probs = x.reshape(N * T, V) - x.reshape(N * T, V).max(axis=1, keepdims=True)
    log_p_y = probs[rows, y_flat].copy()
    np.exp(probs, out=probs)
    total = probs.sum(axis=1)
    log_p_y -= np.log(total)
    if loss_dtype == dtype:
        loss = -np.dot(keep, log_p_y) / N
    else:
        loss = -np.dot(mask.reshape(N * T).astype(loss_dtype), log_p_y.astype(loss_dtype)) / N
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
