"""The min-char-rnn script's lossFun and sample (Karpathy's character-level vanilla RNN in
one file of NumPy), with its shapes and results, the recurrence running compiled:

    from fastbptt.compat.minchar import lossFun, sample
    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev,
                                                      Wxh, Whh, Why, bh, by)

The script's conventions, kept here: column vectors; Wxh (H, V), Whh (H, H), Why (V, H),
bh (H, 1), by (V, 1), hprev (H, 1); inputs and targets lists of T ints in [0, V) (T >= 0),
the inputs one-hot; loss summed over the T steps; every gradient clipped to [-5, 5] as the
script's lossFun does before it returns. The parameters are passed in (the script reads
them as globals). float64 like the script, or float32 (Wxh's dtype decides).

    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)       (H, 1), x_t = onehot(inputs[t])
    p_t = softmax(Why h_t + by)                  (V, 1)
    loss = -sum_t log p_t[targets[t]]

How: the T steps run as one fastbptt.rnn_forward / rnn_backward call (PyTorch layout
W_ih = Wxh, W_hh = Whh, one batch row); the one-hot input projection is the kernel's one
(T, V) x (V, H) GEMM. The output layer, softmax and loss and their gradients are one call
of the fused head fastbptt.softmax_cross_entropy over all steps at once.
"""
import numpy as np

import fastbptt
from fastbptt.runtime.validation import as_float_array

CLIP = 5.0   # the script clips every gradient to [-CLIP, CLIP] to curb exploding gradients


def _check_shape(name, array, expected, described):
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {described} = {expected}, got {array.shape}")


def _params(Wxh, Whh, Why, bh, by):
    """Validate the five parameters; returns them (C-contiguous), H and V."""
    Wxh = as_float_array("Wxh", Wxh, 2)
    dtype = Wxh.dtype
    H, V = Wxh.shape
    arrays = {"Wxh": Wxh}
    for name, value, shape, described in (("Whh", Whh, (H, H), "(H, H)"),
                                          ("Why", Why, (V, H), "(V, H)"),
                                          ("bh", bh, (H, 1), "(H, 1)"),
                                          ("by", by, (V, 1), "(V, 1)")):
        value = as_float_array(name, value, 2, dtype)
        _check_shape(name, value, shape, described + " (H, V from Wxh)")
        arrays[name] = value
    return arrays, H, V


def _indices(name, value, V):
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a list of ints, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.intp)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold ints, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= V:
        raise ValueError(f"{name} must lie in [0, V) = [0, {V}) (V from Wxh), got values "
                         f"from {arr.min()} to {arr.max()}")
    return arr.astype(np.intp)


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):   # noqa: N802 (the script's name)
    """Loss and gradients of one chunk of T characters, and the last hidden state.

    Returns loss (a scalar of the parameters' dtype), dWxh, dWhh, dWhy, dbh, dby (shaped
    like their parameters, clipped to [-5, 5]) and h_last (H, 1), the state after the last
    step (hprev itself, copied, when T = 0).
    """
    p, H, V = _params(Wxh, Whh, Why, bh, by)
    dtype = p["Wxh"].dtype
    hprev = as_float_array("hprev", hprev, 2, dtype)
    _check_shape("hprev", hprev, (H, 1), "(H, 1) (H from Wxh)")
    inputs = _indices("inputs", inputs, V)
    targets = _indices("targets", targets, V)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs and targets must have the same length, got "
                         f"{inputs.size} and {targets.size}")
    T = inputs.size
    if T == 0:
        zeros = [np.zeros_like(p[k]) for k in ("Wxh", "Whh", "Why", "bh", "by")]
        return dtype.type(0), *zeros, hprev.copy()

    steps = np.arange(T)
    x = np.zeros((T, 1, V), dtype)                    # one-hot inputs, one batch row
    x[steps, 0, inputs] = 1
    h, cache = fastbptt.rnn_forward(x, hprev.reshape(1, H), p["Wxh"], p["Whh"],
                                    p["bh"].reshape(H), np.zeros(H, dtype))
    hs = h.reshape(T, H)                              # row t = h_t^T
    # The output layer and the loss in one compiled pass over the steps: scores (T, V) =
    # hs Why^T + by^T, loss = -sum_t log softmax(scores_t)[targets[t]], and its gradients
    # dh (T, H), dWhy (V, H), dby (V,).
    loss, head = fastbptt.softmax_cross_entropy(hs, p["Why"], p["by"].reshape(V), targets,
                                                reduction="sum")
    g = fastbptt.rnn_backward(head.dh.reshape(T, 1, H), cache)
    grads = [g.dW_ih, g.dW_hh, head.dW, g.db_ih.reshape(H, 1), head.db.reshape(V, 1)]
    for d in grads:
        np.clip(d, -CLIP, CLIP, out=d)
    return loss, *grads, hs[-1].reshape(H, 1).copy()


def sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=None):
    """n character indices sampled from the model, starting from state h (H, 1) and the
    character seed_ix. rng: a numpy Generator, or None for np.random's global state (the
    script's np.random.choice, so a seeded script draws the same characters).

    One step at a time in NumPy (each step needs the previous draw); the one-hot product
    Wxh x is the column Wxh[:, ix].
    """
    p, H, V = _params(Wxh, Whh, Why, bh, by)
    h = as_float_array("h", h, 2, p["Wxh"].dtype)
    _check_shape("h", h, (H, 1), "(H, 1) (H from Wxh)")
    if isinstance(seed_ix, (bool, np.bool_)) or not isinstance(seed_ix, (int, np.integer)):
        raise TypeError(f"seed_ix must be an int, got {seed_ix!r}")
    if not 0 <= seed_ix < V:
        raise ValueError(f"seed_ix must lie in [0, V) = [0, {V}), got {seed_ix}")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator or None, got {type(rng).__name__}")
    choice = np.random.choice if rng is None else rng.choice
    Wxh, Whh, Why, bh, by = (p[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    ix, ixes = int(seed_ix), []
    for _ in range(n):
        h = np.tanh(Wxh[:, ix:ix + 1] + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        e = np.exp(y)
        ix = int(choice(range(V), p=(e / np.sum(e)).ravel()))
        ixes.append(ix)
    return ixes


__all__ = ["lossFun", "sample"]
