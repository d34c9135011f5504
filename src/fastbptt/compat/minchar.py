"""The min-char-rnn script's lossFun and sample (Karpathy's character-level vanilla RNN in
one file of NumPy), with its shapes and results, the recurrence running compiled.

Two ways in. The script itself, unchanged but for one line after its own `def lossFun`
(the parameters stay the script's globals)::

    from fastbptt.compat import minchar
    lossFun = minchar.bind(globals())     # lossFun(inputs, targets, hprev), as it calls it

or the parameters as arguments::

    from fastbptt.compat.minchar import lossFun, sample
    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev,
                                                      Wxh, Whh, Why, bh, by)

bind(namespace) takes the namespace explicitly rather than a lossFun that looks up its
caller's frame: it does the same wherever it is called from (a training loop in another
module, a notebook, a test), reads Wxh, Whh, Why, bh, by from the namespace at every call
(so a script that rebinds them, `Wxh = Wxh - lr * dWxh`, is followed as the script's own
lossFun follows it), and a name missing there is a NameError naming it, as in the script.
bind_sample(namespace) does the same for sample(h, seed_ix, n).

The script's conventions, kept here: column vectors; Wxh (H, V), Whh (H, H), Why (V, H),
bh (H, 1), by (V, 1), hprev (H, 1); inputs and targets sequences of T ints in [-V, V)
(negative ones count from the end, as the script's indexing reads them; T >= 0), the
inputs one-hot; loss summed over the T steps; every gradient clipped to [-5, 5] as the
script's lossFun does before it returns. dtypes as the script's: its one-hot inputs are
np.zeros((vocab_size, 1)), float64, so every product is float64 whatever the parameters'
dtype: loss and the returned h are float64, each gradient has its parameter's dtype (the
script accumulates into np.zeros_like(Wxh), ...). The parameters must therefore be float
arrays (an integer np.zeros_like cannot take the script's float gradients either).

    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)       (H, 1), x_t = onehot(inputs[t])
    p_t = softmax(Why h_t + by)                  (V, 1)
    loss = -sum_t log p_t[targets[t]]

How: the T steps run as one fastbptt.rnn_forward / rnn_backward call (PyTorch layout
W_ih = Wxh, W_hh = Whh, one batch row); the one-hot input projection is the kernel's one
(T, V) x (V, H) GEMM. The output layer, softmax and loss and their gradients are one call
of the fused head fastbptt.softmax_cross_entropy over all steps at once.
"""
import collections.abc

import numpy as np

import fastbptt
from fastbptt.compat._args import asarray, convert, indices, result_dtype
from fastbptt.runtime.validation import as_float_array

CLIP = 5.0   # the script clips every gradient to [-CLIP, CLIP] to curb exploding gradients

_PARAMS = ("Wxh", "Whh", "Why", "bh", "by")   # the script's globals, in its order
_ONE_HOT = np.dtype(np.float64)               # the script's xs[t] = np.zeros((vocab_size, 1))


def _check_shape(name, array, expected, described):
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {described} = {expected}, got {array.shape}")


def _params(caller, values, **others):
    """Validate the five parameters (and `others`, e.g. hprev, for the result dtype).
    Returns the parameters as given (their dtypes are the gradients'), them in the work
    dtype (float64, as the script's products are), H and V."""
    given = {}
    for name, value in zip(_PARAMS, values):
        value = asarray(name, value)
        if value.dtype.kind != "f":
            raise TypeError(f"{name} must hold floats (its gradient comes back in its dtype, "
                            f"as the script's np.zeros_like({name})), got {value.dtype}")
        given[name] = value
    Wxh = given["Wxh"]
    if Wxh.ndim != 2:
        raise ValueError(f"Wxh must be 2-D (H, V), got shape {Wxh.shape}")
    H, V = Wxh.shape
    for name, shape, described in (("Whh", (H, H), "(H, H)"), ("Why", (V, H), "(V, H)"),
                                   ("bh", (H, 1), "(H, 1)"), ("by", (V, 1), "(V, 1)")):
        _check_shape(name, given[name], shape, described + " (H, V from Wxh)")
    dtype = result_dtype(caller, **{"the one-hot inputs": _ONE_HOT}, **given, **others)
    work = {name: as_float_array(name, convert(name, value, dtype), 2)
            for name, value in given.items()}
    return given, work, H, V


def _state(name, value, H):
    value = asarray(name, value)
    _check_shape(name, value, (H, 1), "(H, 1) (H from Wxh)")
    return value


def _sequence(name, value, V):
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a sequence of ints, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.intp)
    return indices(name, arr, V, "Wxh")


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):   # noqa: N802 (the script's name)
    """Loss and gradients of one chunk of T characters, and the last hidden state.

    Returns loss (a float64 NumPy scalar; the int 0 for T = 0, as the script), dWxh,
    dWhh, dWhy, dbh, dby (shaped and typed like their parameters, clipped to [-5, 5]) and
    h_last (H, 1) float64, the state after the last step (a copy of hprev when T = 0).
    """
    given, p, H, V = _params("lossFun", (Wxh, Whh, Why, bh, by), hprev=hprev)
    hprev = _state("hprev", hprev, H)
    inputs = _sequence("inputs", inputs, V)
    targets = _sequence("targets", targets, V)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs and targets must have the same length, got "
                         f"{inputs.size} and {targets.size}")
    T = inputs.size
    if T == 0:
        return 0, *(np.zeros_like(given[k]) for k in _PARAMS), hprev.copy()

    dtype = p["Wxh"].dtype
    steps = np.arange(T)
    x = np.zeros((T, 1, V), dtype)                    # one-hot inputs, one batch row
    x[steps, 0, inputs] = 1
    h, cache = fastbptt.rnn_forward(x, convert("hprev", hprev, dtype).reshape(1, H),
                                    p["Wxh"], p["Whh"], p["bh"].reshape(H), np.zeros(H, dtype))
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
    grads = [d.astype(given[k].dtype, copy=False) for k, d in zip(_PARAMS, grads)]
    return loss, *grads, hs[-1].reshape(H, 1).copy()


def sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=None):
    """n character indices sampled from the model, starting from state h (H, 1) and the
    character seed_ix (an int in [-V, V)). rng: a numpy Generator, or None for np.random's
    global state (the script's np.random.choice, so a seeded script draws the same
    characters). Returns a list of the drawn indices as the draws return them (NumPy ints);
    n <= 0 draws none, as the script's range(n).

    One step at a time in NumPy, float64 as the script (each step needs the previous draw);
    the one-hot product Wxh x is the column Wxh[:, ix].
    """
    _, p, H, V = _params("sample", (Wxh, Whh, Why, bh, by), h=h)
    h = convert("h", _state("h", h, H), p["Wxh"].dtype)
    seed = indices("seed_ix", seed_ix, V, "Wxh")
    if seed.ndim != 0:
        raise ValueError(f"seed_ix must be one int, got shape {seed.shape}")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {n!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator or None, got {type(rng).__name__}")
    choice = np.random.choice if rng is None else rng.choice
    Wxh, Whh, Why, bh, by = (p[k] for k in _PARAMS)
    ix, ixes = int(seed), []
    for _ in range(n):
        h = np.tanh(Wxh[:, ix:ix + 1] + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        e = np.exp(y)
        ix = choice(range(V), p=(e / np.sum(e)).ravel())
        ixes.append(ix)
    return ixes


# ------------------------------------------------------------------ the script's globals

def _check_namespace(namespace):
    if not isinstance(namespace, collections.abc.Mapping):
        raise TypeError(f"namespace must be a mapping such as the script's globals(), got "
                        f"{type(namespace).__name__}")


def _globals(namespace, caller):
    """The five parameters as the script's lossFun would read them from its globals."""
    missing = [name for name in _PARAMS if name not in namespace]
    if missing:
        raise NameError(f"{caller} (from fastbptt.compat.minchar.bind) reads the script's "
                        f"globals {', '.join(_PARAMS)}; not defined in its namespace: "
                        f"{', '.join(missing)}")
    values = [namespace[name] for name in _PARAMS]
    V = np.shape(values[0])[-1:] if np.ndim(values[0]) == 2 else None
    if V and "vocab_size" in namespace and namespace["vocab_size"] != V[0]:
        raise ValueError(f"vocab_size = {namespace['vocab_size']!r} but Wxh has shape "
                         f"{np.shape(values[0])}: V = {V[0]} columns (the script's one-hot "
                         f"inputs would not fit)")
    return values


def bind(namespace):
    """The script's lossFun(inputs, targets, hprev), reading Wxh, Whh, Why, bh, by from
    `namespace` (a mapping: the script's globals()) at every call:

        lossFun = minchar.bind(globals())     # after the script's own def lossFun

    Returns what lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by) returns.
    """
    _check_namespace(namespace)

    def bound_lossFun(inputs, targets, hprev):   # noqa: N802
        return lossFun(inputs, targets, hprev, *_globals(namespace, "lossFun"))

    bound_lossFun.__name__ = bound_lossFun.__qualname__ = "lossFun"
    bound_lossFun.__doc__ = (f"min-char-rnn's lossFun(inputs, targets, hprev) on the "
                             f"parameters {', '.join(_PARAMS)} of a bound namespace "
                             f"(fastbptt.compat.minchar.bind).\n\n" + lossFun.__doc__)
    return bound_lossFun


def bind_sample(namespace):
    """The script's sample(h, seed_ix, n), reading the parameters from `namespace` at
    every call, as bind does for lossFun: ``sample = minchar.bind_sample(globals())``."""
    _check_namespace(namespace)

    def bound_sample(h, seed_ix, n):
        return sample(h, seed_ix, n, *_globals(namespace, "sample"))

    bound_sample.__name__ = bound_sample.__qualname__ = "sample"
    bound_sample.__doc__ = ("min-char-rnn's sample(h, seed_ix, n) on the parameters of a "
                            "bound namespace (fastbptt.compat.minchar.bind_sample).\n\n"
                            + sample.__doc__)
    return bound_sample


__all__ = ["lossFun", "sample", "bind", "bind_sample"]
