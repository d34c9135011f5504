"""One-step cell classes RNNCell, LSTMCell and GRUCell, named and parameterised like
torch.nn's, for loops a caller writes itself (decoders, attention, custom recurrences).

Parameters are a dict of NumPy arrays under torch's keys and shapes, G = 1, 4, 3 gates:

    weight_ih (G*H, I)   weight_hh (G*H, H)   bias_ih (G*H,)   bias_hh (G*H,)

forward(x_t, hx=None) -> new state, cache: one step; x_t (B, I) or (I,) unbatched (as
    torch allows), hx (B, H) (LSTM: (h, c)) or (H,) unbatched, or None for zeros. The new
    state is h' (LSTM: (h', c')), shaped like hx. The cache is what backward needs.
backward(d_h, cache, d_c=None) -> dx, d_hx, grads: d_h = dL/dh' (B, H) (LSTM: d_c =
    dL/dc' too; either may be None, not both); dx (B, I), d_hx = dL/dhx (LSTM: (dL/dh,
    dL/dc)), grads keyed like params. A loop calls backward once per step, last step
    first, adding d_hx to the next call's d_h and summing grads over the steps.

Each call is one T = 1 call of the functional core (fastbptt.lstm_forward, ...; the
compiled driver or, with backend="reference", its NumPy twin), so the cells compute the
same equations as the layers; the checks here are only those that name x_t and hx, the
rest is the driver's.
"""
import numpy as np

from fastbptt.cells import docs
from fastbptt.cells.spec import GRU as _GRU_SPEC
from fastbptt.cells.spec import LSTM as _LSTM_SPEC
from fastbptt.cells.spec import RNN as _RNN_SPEC
from fastbptt.nn.layers import _RecurrentLayer
from fastbptt.nn.stack import cell_function
from fastbptt.runtime.validation import as_float_array


class StepCache:
    """What a cell's backward needs from its forward, opaque to callers: the functional
    core's cache of the T = 1 call and whether the input was unbatched (the gradients
    then drop B)."""
    __slots__ = ("cache", "unbatched")

    def __init__(self, cache, unbatched):
        self.cache = cache
        self.unbatched = unbatched


# The parameters and sections the three Cell classes document alike (docs.fill_from).
_CELL_DOCS = {
    "cell_parameters": """\
input_size : int
    I, the size of the input x_t.
hidden_size : int
    H, the size of the state.
bias : bool, default True
    With ``bias_ih`` and ``bias_hh`` parameters.""",
    "cell_tail_parameters": """\
dtype : {numpy.float32, numpy.float64}, default numpy.float32
    The parameters' dtype; inputs must have it.
seed : int, numpy.random.Generator or None
    Every parameter starts as U(-1/sqrt(H), 1/sqrt(H)), torch's default.
backend : {None, "compiled", "reference"}, default None
    None follows :func:`fastbptt.set_backend`; a name pins this cell to one backend.""",
    "cell_sections": """\
Attributes
----------
params : dict of str to ndarray
    ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,),
    torch's names and shapes (G gates); ``state_dict()`` / ``load_state_dict()``
    round-trip with torch's.

Notes
-----
``forward(x_t, hx=None)`` runs one step of a batch, x_t (B, I), or of one unbatched
input (I,), as one T = 1 call of the compiled cell, and returns the new state and an
opaque cache; ``backward(d_h, cache, ...)`` returns ``dx``, the gradient of the state
the step started from, and a dict of the parameters' gradients, which a loop of your
own adds up over its steps (last step first).""",
}


class _Cell:
    """The machinery shared by RNNCell, LSTMCell and GRUCell; use those."""
    spec = None   # the cell's CellSpec

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, seed=None,
                 backend=None):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        self.dtype = dtype
        self.backend = backend   # validated by the property
        self.params = self._init_params(np.random.default_rng(seed))

    # the layers' backend switch, torch's initialisation, state-dict handling and
    # options (these read only hidden_size, dtype, params, spec and _param_shapes)
    backend = _RecurrentLayer.backend
    _init_params = _RecurrentLayer._init_params
    state_dict = _RecurrentLayer.state_dict
    load_state_dict = _RecurrentLayer.load_state_dict
    options = _RecurrentLayer.options

    def _param_shapes(self):
        GH = self.spec.gates * self.hidden_size
        shapes = {"weight_ih": (GH, self.input_size), "weight_hh": (GH, self.hidden_size)}
        if self.bias:
            shapes.update(bias_ih=(GH,), bias_hh=(GH,))
        return shapes

    # ------------------------------------------------------------ forward / backward

    def _states_in(self, hx, B, unbatched):
        """hx in forward's form as a list of (B, H) arrays or None, in spec.states order."""
        n = len(self.spec.states)
        if n == 1:
            values = (hx,)
        elif hx is None:
            values = (None,) * n
        elif isinstance(hx, tuple) and len(hx) == n:
            values = hx
        else:
            raise TypeError("hx must be a tuple (h, c) or None")
        shape = (self.hidden_size,) if unbatched else (B, self.hidden_size)
        out = []
        for i, value in enumerate(values):
            if value is None:
                out.append(None)
                continue
            name = "hx" if n == 1 else f"hx[{i}] ({self.spec.states[i]})"
            value = as_float_array(name, value, len(shape), self.dtype, contiguous=False)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape} (B from x_t, H = "
                                 f"hidden_size), got {value.shape}")
            out.append(value[None] if unbatched else value)
        return out

    def _forward(self, x_t, hx):
        x_t = as_float_array("x_t", x_t, np.ndim(x_t), self.dtype, contiguous=False)
        unbatched = x_t.ndim == 1
        if not (x_t.ndim in (1, 2) and x_t.shape[-1] == self.input_size):
            raise ValueError(f"x_t must have shape (B, input_size) or (input_size,) with "
                             f"input_size = {self.input_size}, got {x_t.shape}")
        x = x_t[None, None] if unbatched else x_t[None]   # (1, B, I): a T = 1 sequence
        states = self._states_in(hx, x.shape[1], unbatched)
        p = self.params
        forward = cell_function(self.backend, self.spec.forward_name)
        h, cache = forward(x, *states, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                           p.get("bias_hh"), **self.options)
        new = [h[0]]   # (B, H), the output of the one step, a new array
        for extra in cache.final_states()[1:]:
            new.append(extra.copy())   # c': the cache keeps its own
        if unbatched:
            new = [s[0] for s in new]
        state = new[0] if len(new) == 1 else tuple(new)
        return state, StepCache(cache, unbatched)

    def _backward(self, d_h, cache, d_c=None):
        if not isinstance(cache, StepCache):
            raise TypeError(f"cache must come from {type(self).__name__}.forward, got "
                            f"{type(cache).__name__}")
        if d_h is None and d_c is None:
            raise ValueError("give d_h" + (" or d_c" if len(self.spec.states) == 2 else "")
                             + "; all were None")
        inner = cache.cache
        B, H = inner.final_states()[0].shape
        shape = (H,) if cache.unbatched else (B, H)
        grads_in = []
        for name, value in (("d_h", d_h), ("d_c", d_c))[:len(self.spec.states)]:
            if value is not None:
                value = as_float_array(name, value, len(shape), self.dtype, contiguous=False)
                if value.shape != shape:
                    raise ValueError(f"{name} must have the state's shape {shape}, got "
                                     f"{value.shape}")
                if cache.unbatched:
                    value = value[None]
            grads_in.append(value)
        # dL/dh' enters as the gradient of the final state: at T = 1 it is the same number
        # as the output's gradient, and it lets d_h be None when only d_c is given
        backward = cell_function(None, self.spec.backward_name)   # goes where cache came from
        g = backward(None, inner, *grads_in)
        n = len(self.spec.states)
        dx = g.dx[0]
        d_states = list(g[1:1 + n])
        if cache.unbatched:
            dx = dx[0]
            d_states = [s[0] for s in d_states]
        grads = {"weight_ih": g.dW_ih, "weight_hh": g.dW_hh}
        if self.bias:
            grads["bias_ih"], grads["bias_hh"] = g.db_ih, g.db_hh
        return dx, (d_states[0] if n == 1 else tuple(d_states)), grads

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"bias={self.bias}{extra}, dtype={self.dtype.name}, backend={self.backend!r})")


class _HiddenStateCell(_Cell):
    """The calls of the cells whose state is h alone (RNNCell, GRUCell)."""

    def forward(self, x_t, hx=None):
        return self._forward(x_t, hx)

    __call__ = forward

    def backward(self, d_h, cache):
        return self._backward(d_h, cache)


@docs.fill_from(_CELL_DOCS.__getitem__)
class RNNCell(_HiddenStateCell):
    """One step of an Elman RNN, h' = f(x W_ih^T + b_ih + h W_hh^T + b_hh), like
    torch.nn.RNNCell.

    Parameters
    ----------
    {cell_parameters}
    nonlinearity : {"tanh", "relu"}, default "tanh"
        f, as torch.nn.RNNCell's.
    {cell_tail_parameters}

    {cell_sections}
    ``forward(x_t, hx=None) -> h', cache``; ``backward(d_h, cache) -> dx, dhx, grads``.
    """
    spec = _RNN_SPEC

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float32, seed=None, backend=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu' (torch.nn.RNNCell's), "
                             f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype, seed, backend)


@docs.fill_from(_CELL_DOCS.__getitem__)
class GRUCell(_HiddenStateCell):
    """One step of torch.nn.GRUCell's GRU (gates r, z, n; n = tanh(x W_in^T + b_in +
    r * (h W_hn^T + b_hn)), h' = (1 - z) n + z h).

    Parameters
    ----------
    {cell_parameters}
    {cell_tail_parameters}

    {cell_sections}
    ``forward(x_t, hx=None) -> h', cache``; ``backward(d_h, cache) -> dx, dhx, grads``.
    """
    spec = _GRU_SPEC


@docs.fill_from(_CELL_DOCS.__getitem__)
class LSTMCell(_Cell):
    """One step of torch.nn.LSTMCell's LSTM (gates i, f, g, o; c' = f c + i g,
    h' = o tanh(c')).

    Parameters
    ----------
    {cell_parameters}
    {cell_tail_parameters}

    {cell_sections}
    ``forward(x_t, hx=None) -> (h', c'), cache`` with hx ``(h, c)`` or None;
    ``backward(d_h, cache, d_c=None) -> dx, (dh, dc), grads``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> cell = fastbptt.LSTMCell(3, 4, seed=0)
    >>> (h, c), cache = cell.forward(np.ones((2, 3), np.float32))
    >>> dx, (dh, dc), grads = cell.backward(np.ones_like(h), cache)
    >>> h.shape, dx.shape, grads["weight_hh"].shape
    ((2, 4), (2, 3), (16, 4))
    """
    spec = _LSTM_SPEC

    def forward(self, x_t, hx=None):
        return self._forward(x_t, hx)

    __call__ = forward

    def backward(self, d_h, cache, d_c=None):
        return self._backward(d_h, cache, d_c)


# The cell class of each cell, keyed by its spec's name ("rnn", "lstm", "gru").
CELL_CLASSES = {cls.spec.name: cls for cls in (RNNCell, LSTMCell, GRUCell)}
