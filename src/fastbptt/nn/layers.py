"""Layer classes RNN, LSTM and GRU: stacked and bidirectional recurrent layers built from
the functional cells, named and parameterised like torch.nn.

Parameters are a dict of NumPy arrays keyed like a torch state dict, so weights move
between the two with state_dict() / load_state_dict() (torch tensors load directly, and
`{k: torch.from_numpy(v) for k, v in layer.state_dict().items()}` loads into torch):

    weight_ih_l{k}{sfx} (G*H, I_k)   weight_hh_l{k}{sfx} (G*H, H)
    bias_ih_l{k}{sfx}   (G*H,)       bias_hh_l{k}{sfx}   (G*H,)

k the layer, sfx "" or "_reverse", I_0 = input_size and I_k = D*H above (D = 2 when
bidirectional), G = 1, 4, 3 gates for RNN, LSTM, GRU.

forward(x, h0=None, lengths=None, check_finite=False) -> output, h_n (LSTM: output,
    (h_n, c_n)); check_finite=True raises ValueError on NaN/Inf in x (inside the
    lengths), the initial states or the parameters. Here
    x (T, B, I) (or (B, T, I) with batch_first), h0 (L*D, B, H) (LSTM: (h0, c0) or None),
    output (T, B, D*H) (or (B, T, D*H)), [forward, reverse] concatenated like torch;
    h_n (L*D, B, H), layer-major then direction, like torch.
backward(d_output, d_hn=None, d_cn=None) -> dx, grads: grads keyed like the parameters;
    the initial states' gradients are left in self.d_h0 (and self.d_c0). It raises
    ParametersChangedError when a fastbptt optimizer updated a parameter, or
    layer.params had one replaced, since the forward (versions.py says what cannot be
    detected).

The reverse direction reads each sequence backwards within its own length, as torch does
with packed sequences: position t < lengths[b] of the reversed sequence is step
lengths[b] - 1 - t.

dropout=p (keyword, torch's semantics): in training mode (the default; train() / eval()
switch it, `training` reads it) layer k's output Y_k (T, B, D*H), for every k but the
last, reaches layer k+1 as Y_k * M_k with M_k = Bernoulli(1 - p) / (1 - p) drawn from the
layer's Generator (`generator`, the one seeded by `seed` that drew the initial weights),
and backward multiplies the gradient reaching Y_k by the same M_k (kept on the tape). The
masks are drawn here, in NumPy, so both backends see the same ones for the same seed.
h_n and the last layer's output are never dropped; nothing is dropped in evaluation mode.

proj_size=P on LSTM (keyword, torch's LSTMP): each layer and direction projects its
hidden state, h_t = W_hr (o_t * tanh(c_t)) with weight_hr_l{k}{sfx} (P, H) (keyed after
the biases, as torch orders them), so h is P wide (real_hidden_size, torch's name):
weight_hh (4H, P), I_k = D*P above layer 0, output (T, B, D*P), h_n (L*D, B, P), while
c_n stays (L*D, B, H). The cell function gets W_hr= (fastbptt.cells.projection).

step(x_t, state=None) -> output_t, state: one time step of a unidirectional stack for
streaming inference, x_t (B, I) (or (I,)), output_t (B, H): the same numbers as
forward(x_t[None], state), without keeping a tape.
"""
import numbers
import warnings

import numpy as np

from fastbptt.cells import docs
from fastbptt.cells.args import check_lengths, check_sizes
from fastbptt.cells.spec import GRU as _GRU_SPEC
from fastbptt.cells.spec import LSTM as _LSTM_SPEC
from fastbptt.cells.spec import LSTMP as _LSTMP_SPEC
from fastbptt.cells.spec import RNN as _RNN_SPEC
from fastbptt.nn import versions
from fastbptt.nn.stack import (
    Tape,
    cell_function,
    stack_backward,
    stack_forward,
    step_function,
)
from fastbptt.runtime.backend import BACKENDS
from fastbptt.runtime.validation import as_float_array
from fastbptt.runtime.validation import check_finite as _check_finite

# The parameters and sections every layer class documents alike, filled into the
# docstrings of RNN, LSTM and GRU from their spec (fastbptt.cells.docs.fill_from).
_LAYER_PARAMETERS = """\
input_size : int
    I, the size of each input vector.
hidden_size : int
    H, the size of each hidden state.
num_layers : int, default 1
    Stacked layers; layer k > 0 reads layer k-1's output (D*H wide).
bias : bool, default True
    With ``bias_ih_l{k}`` and ``bias_hh_l{k}`` parameters.
batch_first : bool, default False
    Inputs and outputs are (B, T, ...) instead of (T, B, ...).
bidirectional : bool, default False
    Also run each layer backwards in time (D = 2 directions, outputs concatenated
    [forward, reverse]).
dtype : {numpy.float32, numpy.float64}, default numpy.float32
    The parameters' dtype; inputs must have it.
seed : int, numpy.random.Generator or None
    Every parameter starts as U(-1/sqrt(H), 1/sqrt(H)), torch's default.
backend : {None, "compiled", "reference"}, default None
    None follows :func:`fastbptt.set_backend` / :func:`fastbptt.use_backend`; a name
    pins this layer to one backend.
dropout : float in [0, 1), default 0.0, keyword-only
    torch's dropout between layers: in training mode (``train()``, the default) the
    output of every layer but the last is multiplied by a mask of
    Bernoulli(1 - p) / (1 - p) drawn from the layer's Generator and kept for backward;
    none after ``eval()``."""


def _layer_sections(spec):
    """The Attributes, Raises and Notes sections of a layer class of the cell `spec`."""
    GH = f"{spec.gates}H" if spec.gates > 1 else "H"
    nonlinearity = (", or a nonlinearity other than tanh and relu"
                    if "nonlinearity" in spec.options else "")
    if len(spec.states) > 1:
        forward = "``forward(x, hx=None, lengths=None, check_finite=False)`` returns\n" \
                  "``output, (h_n, c_n)`` (``hx`` is ``(h0, c0)`` or None)"
        backward = "``backward(d_output, d_hn=None, d_cn=None)``"
        initial = "``layer.d_h0`` and ``layer.d_c0``"
    else:
        forward = "``forward(x, h0=None, lengths=None, check_finite=False)`` returns\n" \
                  "``output, h_n``"
        backward = "``backward(d_output, d_hn=None)``"
        initial = "``layer.d_h0``"
    return f"""\
Attributes
----------
params : dict of str to ndarray
    The parameters under torch's state-dict keys (``weight_ih_l0``,
    ``bias_hh_l1_reverse``, ...): ``weight_ih_l{{k}}`` ({GH}, I_k), ``weight_hh_l{{k}}``
    ({GH}, H), biases ({GH},). Optimizers update these arrays in place.

Raises
------
ValueError
    Sizes that are not positive ints{nonlinearity}.
TypeError
    ``bias``, ``batch_first`` or ``bidirectional`` not a bool.

Notes
-----
{forward}, shaped like torch's: ``output`` (T, B, D*H),
``h_n`` (num_layers*D, B, H). {backward}
returns ``dx`` and a dict of gradients under the parameters' keys, and sets {initial}.
``forward_with_tape`` / ``backward_with_tape`` do the same without keeping anything on
the layer. ``step(x_t, state=None)`` advances a unidirectional stack by one time step
for streaming inference, building no tape. ``state_dict()`` and ``load_state_dict()``
round-trip with torch's."""


def _layer_doc(spec):
    sections = {"layer_parameters": _LAYER_PARAMETERS, "layer_sections": _layer_sections(spec)}
    return docs.fill_from(sections.__getitem__)


class _RecurrentLayer:
    """The machinery shared by RNN, LSTM and GRU; use those."""
    spec = None      # the cell's CellSpec

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, dtype=np.float32, seed=None, backend=None, *,
                 dropout=0.0, proj_size=0):
        for name, value, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                                 ("num_layers", num_layers, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name, value in (("bias", bias), ("batch_first", batch_first),
                            ("bidirectional", bidirectional)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dtype = dtype
        self.dropout = _check_dropout(dropout, self.num_layers)
        self.proj_size = _check_proj_size(proj_size, self.hidden_size, self.spec)
        # the size of h (and of each direction's output): P with a projection, else H,
        # as torch names it
        self.real_hidden_size = self.proj_size or self.hidden_size
        self.training = True   # torch modules start in training mode
        self.backend = backend   # validated by the property
        # the initial weights, then the dropout masks, come from this one Generator
        self.generator = np.random.default_rng(seed)
        self.params = self._init_params(self.generator)
        self.tape = None   # the last forward's Tape, for backward

    # ------------------------------------------------------------ modes

    def train(self, mode=True):
        """Training mode (dropout on) or, with mode=False, evaluation mode; returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {mode!r}")
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (no dropout), like torch's module.eval(); returns self."""
        return self.train(False)

    def dropout_masks(self, T, B):
        """The masks of one forward over T steps of B sequences: a list of L - 1 arrays
        (T, B, D*H) of 0 and 1/(1-p) in the layer's dtype, or None when nothing is dropped
        (p = 0, evaluation mode or one layer). Draws from self.generator."""
        p = self.dropout
        if p == 0 or not self.training or self.num_layers == 1:
            return None
        shape = (T, B, self.num_directions * self.real_hidden_size)
        scale = self.dtype.type(1.0 / (1.0 - p))
        return [(self.generator.random(shape) >= p) * scale
                for _ in range(self.num_layers - 1)]

    # ------------------------------------------------------------ parameters

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, value):
        if value is not None and value not in BACKENDS:
            raise ValueError(f"backend must be None (follow fastbptt.set_backend), "
                             f"'compiled' or 'reference', got {value!r}")
        self._backend = value

    def _param_shapes(self):
        """{key: shape} in torch's order: by layer, direction, then w_ih, w_hh, b_ih, b_hh
        (and w_hr (P, H) with a projection; h is then P wide: W_hh (G*H, P))."""
        G, H, P = self.spec.gates, self.hidden_size, self.real_hidden_size
        shapes = {}
        for k in range(self.num_layers):
            I = self.input_size if k == 0 else self.num_directions * P
            for sfx in ("", "_reverse")[:self.num_directions]:
                shapes[f"weight_ih_l{k}{sfx}"] = (G * H, I)
                shapes[f"weight_hh_l{k}{sfx}"] = (G * H, P)
                if self.bias:
                    shapes[f"bias_ih_l{k}{sfx}"] = (G * H,)
                    shapes[f"bias_hh_l{k}{sfx}"] = (G * H,)
                if self.proj_size:
                    shapes[f"weight_hr_l{k}{sfx}"] = (P, H)
        return shapes

    def _init_params(self, rng):
        # torch's default: every parameter U(-1/sqrt(H), 1/sqrt(H))
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {key: rng.uniform(-bound, bound, shape).astype(self.dtype)
                for key, shape in self._param_shapes().items()}

    def state_dict(self):
        """The parameters as a new dict of new arrays, under torch's keys and shapes."""
        return {key: value.copy() for key, value in self.params.items()}

    def load_state_dict(self, state_dict):
        """Replace every parameter from a dict with exactly this layer's keys and shapes
        (NumPy arrays or anything np.asarray takes, torch CPU tensors included); values
        are copied and converted to the layer's dtype."""
        shapes = self._param_shapes()
        missing = [k for k in shapes if k not in state_dict]
        unexpected = [k for k in state_dict if k not in shapes]
        if missing or unexpected:
            raise KeyError(f"state_dict keys do not match this {type(self).__name__}: "
                           f"missing {missing}, unexpected {unexpected}")
        loaded = {}
        for key, shape in shapes.items():
            value = np.asarray(state_dict[key])
            if not (np.issubdtype(value.dtype, np.floating)):
                raise TypeError(f"state_dict[{key!r}] must be a float array, got {value.dtype}")
            if value.shape != shape:
                raise ValueError(f"state_dict[{key!r}] must have shape {shape}, got {value.shape}")
            loaded[key] = np.array(value, dtype=self.dtype, order="C")
        self.params = loaded

    def _weights(self, k, sfx):
        p = self.params
        b_ih = p.get(f"bias_ih_l{k}{sfx}")
        b_hh = p.get(f"bias_hh_l{k}{sfx}")
        return p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"], b_ih, b_hh

    def cell_keywords(self, k, sfx):
        """The cell function's keywords of layer k, direction sfx, beside the options:
        the projection {"W_hr": (P, H)} of an LSTM with proj_size, else none."""
        if not self.proj_size:
            return {}
        return {"W_hr": self.params[f"weight_hr_l{k}{sfx}"]}

    def state_sizes(self):
        """The size of each state in spec.states order: (H,), or (P, H) for an LSTM's h
        and c (P = real_hidden_size, H without a projection)."""
        if len(self.spec.states) == 1:
            return (self.hidden_size,)
        return (self.real_hidden_size, self.hidden_size)

    # ------------------------------------------------------------ forward / backward

    @property
    def options(self):
        """The cell function's extra keywords (the RNN's nonlinearity)."""
        return {name: getattr(self, name) for name in self.spec.options}

    def state_arrays(self, state):
        """A state in forward's form (h, or (h, c) for an LSTM; None for zeros) as a tuple
        in spec.states order."""
        if len(self.spec.states) == 1:
            return (state,)
        if state is None:
            return (None,) * len(self.spec.states)
        if not (isinstance(state, tuple) and len(state) == len(self.spec.states)):
            names = ", ".join(self.spec.initial_states)
            raise TypeError(f"hx must be a tuple ({names}) or None")
        return state

    def state_from_arrays(self, arrays):
        """The inverse of state_arrays: h, or (h, c) for an LSTM."""
        return arrays[0] if len(self.spec.states) == 1 else tuple(arrays)

    def initial_states(self, state, B):
        """Validated initial states for a batch of B: a list of (L*D, B, n) arrays in
        spec.states order (n from state_sizes; zeros where not given); state in forward's
        form."""
        out = []
        for name, value, n in zip(self.spec.initial_states, self.state_arrays(state),
                                  self.state_sizes()):
            shape = (self.num_layers * self.num_directions, B, n)
            if value is None:
                out.append(np.zeros(shape, self.dtype))
                continue
            value = as_float_array(name, value, 3, self.dtype, contiguous=False)
            if value.shape != shape:
                what = "H" if n == self.hidden_size else "proj_size"
                raise ValueError(f"{name} must have shape (num_layers * num_directions, B, "
                                 f"{what}) = {shape}, got {value.shape}")
            out.append(value)
        return out

    def forward_with_tape(self, x, state=None, lengths=None, check_finite=False,
                          backend=None):
        """forward without keeping anything on the layer: returns (output, final state,
        tape), the tape being what backward_with_tape needs. backend ("compiled" or
        "reference") overrides self.backend for this call."""
        backend = self.backend if backend is None else backend
        forward = cell_function(backend, self.spec.forward_name)
        # no copy before the sizes are known to fit the kernels' 32-bit ints
        x = as_float_array("x", x, 3, self.dtype, contiguous=False)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have {self.input_size} features (input_size) in its "
                             f"last dimension, got shape {x.shape}")
        seq = x.transpose(1, 0, 2) if self.batch_first else x   # (T, B, I)
        T, B = seq.shape[:2]
        check_sizes(T, B, max(self.input_size, self.num_directions * self.hidden_size),
                    self.hidden_size, self.spec.gates, self.spec.work_gates)
        lengths = check_lengths(lengths, B, T)
        states = self.initial_states(state, B)
        if not isinstance(check_finite, (bool, np.bool_)):
            raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
        if check_finite:
            # x only inside each sequence's length: padding never affects a result
            inside = None if lengths is None else np.arange(T)[:, None] < lengths[None, :]
            _check_finite("x", seq, inside)
            for name, value in zip(self.spec.initial_states, states):
                _check_finite(name, value)
            for key, value in self.params.items():
                _check_finite(f"params[{key!r}]", value)
        masks = self.dropout_masks(T, B)
        output, finals, tape = stack_forward(self, forward, seq, states, lengths, x.shape,
                                             backend, masks)
        tape = tape._replace(params=versions.snapshot(self.params))
        out = output.transpose(1, 0, 2) if self.batch_first else output
        return np.ascontiguousarray(out), self.state_from_arrays(finals), tape

    def backward_with_tape(self, tape, d_output, d_state=None):
        """The gradients of the forward that made `tape`: d_output like its output, or
        None; d_state: the final state's gradient in forward's form ((L*D, B, H) each), or
        None. Returns (dx, grads keyed like self.params, the initial state's gradient in
        forward's form)."""
        if not isinstance(tape, Tape):
            raise TypeError(f"tape must come from forward_with_tape, got "
                            f"{type(tape).__name__}")
        versions.check_unchanged(self.params, tape.params, f"{type(self).__name__}.backward")
        backward = cell_function(tape.backend, self.spec.backward_name)
        D, L = self.num_directions, self.num_layers
        P = self.real_hidden_size
        x_shape = tape.x_shape
        B = x_shape[0] if self.batch_first else x_shape[1]
        T = x_shape[1] if self.batch_first else x_shape[0]
        out_shape = (B, T, D * P) if self.batch_first else (T, B, D * P)
        names = tuple(f"d_{s}n" for s in self.spec.states)   # d_hn, d_cn
        checked = []
        for name, value, n in zip(names, self.state_arrays(d_state), self.state_sizes()):
            state_shape = (L * D, B, n)
            if value is not None:
                value = as_float_array(name, value, 3, self.dtype, contiguous=False)
                if value.shape != state_shape:
                    raise ValueError(f"{name} must have shape (num_layers * num_directions, "
                                     f"B, {'H' if n == self.hidden_size else 'proj_size'}) "
                                     f"= {state_shape}, got {value.shape}")
            checked.append(value)
        if d_output is None and all(v is None for v in checked):
            raise ValueError("give d_output, " + " or ".join(names) + "; all were None")
        if d_output is not None:
            d_output = as_float_array("d_output", d_output, 3, self.dtype, contiguous=False)
            if d_output.shape != out_shape:
                raise ValueError(f"d_output must have the output's shape {out_shape}, "
                                 f"got {d_output.shape}")
            d_output = d_output.transpose(1, 0, 2) if self.batch_first else d_output
        d_input, grads, d_init = stack_backward(self, backward, tape, d_output, checked)
        dx = d_input.transpose(1, 0, 2) if self.batch_first else d_input
        ordered = {key: grads[key] for key in self._param_shapes()}
        return np.ascontiguousarray(dx), ordered, self.state_from_arrays(d_init)

    def step(self, x_t, state=None):
        """Advance a unidirectional stack by one time step, for streaming inference.

        x_t (B, I), or (I,) for one unbatched sequence; state in forward's form with
        shapes (L, B, H) (or (L, H) unbatched), or None for zeros. Returns (output_t
        (B, H) (or (H,)), the new state in the same form): the numbers of
        forward(x_t[None], state), dropout included in training mode. Each layer is one
        T = 1 step of the cell kernel that keeps nothing for a backward (the compiled
        driver's step; the reference forward's final states with backend="reference"):
        self.tape is left alone, so step can run between a forward and its backward.
        """
        if self.bidirectional:
            raise ValueError("step needs a unidirectional layer: the reverse direction "
                             "reads the sequence from its end")
        run_step = step_function(self.backend, _LSTMP_SPEC if self.proj_size else self.spec)
        x_t = as_float_array("x_t", x_t, np.ndim(x_t), self.dtype, contiguous=False)
        unbatched = x_t.ndim == 1
        if x_t.ndim not in (1, 2) or x_t.shape[-1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, input_size) or (input_size,) with "
                             f"input_size = {self.input_size}, got {x_t.shape}")
        if unbatched:
            x_t = x_t[None]
            state = None if state is None else self.state_from_arrays(
                [None if s is None else np.asarray(s)[:, None]
                 for s in self.state_arrays(state)])
        B = x_t.shape[0]
        check_sizes(1, B, max(self.input_size, self.hidden_size), self.hidden_size,
                    self.spec.gates, self.spec.work_gates)
        states = self.initial_states(state, B)
        masks = self.dropout_masks(1, B)
        L = self.num_layers
        # one layer: the new states are the state (1, B, H) as views, no copy
        finals = None if L == 1 else [np.empty_like(s) for s in states]
        options = self.options
        inp = x_t[None]   # (1, B, I_k)
        for k in range(L):
            new = run_step(inp, [s[k] for s in states], *self._weights(k, ""), **options,
                           **self.cell_keywords(k, ""))
            if L == 1:
                finals = [value[None] for value in new]
            else:
                for final, value in zip(finals, new):
                    final[k] = value
            h = new[0]
            inp = (h if masks is None or k == L - 1 else h * masks[k][0])[None]
        out = inp[0]
        if unbatched:
            return out[0], self.state_from_arrays([f[:, 0] for f in finals])
        return out, self.state_from_arrays(finals)

    def _run_forward(self, x, state, lengths, check_finite):
        out, final, self.tape = self.forward_with_tape(x, state, lengths, check_finite)
        return out, final

    def _run_backward(self, d_output, d_state):
        if self.tape is None:
            raise RuntimeError("backward needs a forward call first")
        dx, grads, d_init = self.backward_with_tape(self.tape, d_output, d_state)
        for name, value in zip(self.spec.initial_states, self.state_arrays(d_init)):
            setattr(self, f"d_{name}", value)   # d_h0, d_c0
        return dx, grads

    def backward(self, d_output, d_hn=None):
        """Gradients of the last forward call. d_output like forward's output, or None;
        d_hn (L*D, B, H) or None. Returns dx and the parameters' gradients as a dict
        keyed like self.params; self.d_h0 holds dL/dh0."""
        return self._run_backward(d_output, d_hn)

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}{extra}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, "
                + (f"proj_size={self.proj_size}, " if self.proj_size else "") +
                f"bidirectional={self.bidirectional}, "
                f"dtype={self.dtype.name}, backend={self.backend!r})")


def _check_dropout(p, num_layers):
    """p as a float, after torch's checks: a number in [0, 1) (p = 1 would scale by
    1/(1-p) = inf), and torch's warning when there is no layer after which to drop."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real) \
            or not 0 <= p < 1:
        raise ValueError(f"dropout must be a number in [0, 1), the probability of zeroing "
                         f"an element, got {p!r}")
    if p > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                      "non-zero dropout expects num_layers greater than 1, but got "
                      f"dropout={p} and num_layers={num_layers}", UserWarning, stacklevel=3)
    return float(p)


def _check_proj_size(p, hidden_size, spec):
    """p as an int after torch's checks: 0 (no projection) or 0 < p < hidden_size, and
    only on an LSTM (the projection h_t = W_hr (o tanh(c_t)) is LSTMP's)."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
        raise TypeError(f"proj_size must be an int, got {p!r}")
    if p < 0:
        raise ValueError(f"proj_size must be 0 (no projection) or a positive int, got {p}")
    if p and spec.name != "lstm":
        raise ValueError(f"proj_size is only supported for LSTM, not "
                         f"{spec.torch_name}, got proj_size={p}")
    if p >= hidden_size:
        raise ValueError(f"proj_size must be smaller than hidden_size = {hidden_size}, "
                         f"got {p}")
    return int(p)


@_layer_doc(_RNN_SPEC)
class RNN(_RecurrentLayer):
    """Elman RNN layers, like ``torch.nn.RNN``.

    Each layer and direction runs ``h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``
    on the compiled cell (:func:`fastbptt.rnn_forward`).

    Parameters
    ----------
    {layer_parameters}
    nonlinearity : {"tanh", "relu"}, default "tanh"
        f, as torch.nn.RNN's.

    {layer_sections}

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> rnn = fastbptt.RNN(3, 8, num_layers=2, seed=0)
    >>> x = np.ones((5, 2, 3), np.float32)                   # (T, B, I)
    >>> output, h_n = rnn.forward(x)
    >>> output.shape, h_n.shape
    ((5, 2, 8), (2, 2, 8))
    >>> dx, grads = rnn.backward(np.ones_like(output))
    >>> dx.shape, grads["weight_hh_l1"].shape
    ((5, 2, 3), (8, 8))
    """
    spec = _RNN_SPEC

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh",
                 bias=True, batch_first=False, bidirectional=False, dtype=np.float32,
                 seed=None, backend=None, *, dropout=0.0, proj_size=0):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu' (torch.nn.RNN's), "
                             f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first,
                         bidirectional, dtype, seed, backend, dropout=dropout,
                         proj_size=proj_size)

    def forward(self, x, h0=None, lengths=None, check_finite=False):
        return self._run_forward(x, h0, lengths, check_finite)

    __call__ = forward


@_layer_doc(_GRU_SPEC)
class GRU(_RecurrentLayer):
    """GRU layers, like ``torch.nn.GRU`` (gates r, z, n).

    Each layer and direction runs the compiled cell :func:`fastbptt.gru_forward`.

    Parameters
    ----------
    {layer_parameters}

    {layer_sections}

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> gru = fastbptt.GRU(3, 8, bidirectional=True, batch_first=True, seed=0)
    >>> output, h_n = gru.forward(np.ones((2, 5, 3), np.float32))   # (B, T, I)
    >>> output.shape, h_n.shape
    ((2, 5, 16), (2, 2, 8))
    >>> sorted(gru.state_dict())[:2]
    ['bias_hh_l0', 'bias_hh_l0_reverse']
    """
    spec = _GRU_SPEC

    def forward(self, x, h0=None, lengths=None, check_finite=False):
        return self._run_forward(x, h0, lengths, check_finite)

    __call__ = forward


@_layer_doc(_LSTM_SPEC)
class LSTM(_RecurrentLayer):
    """LSTM layers, like ``torch.nn.LSTM`` (gates i, f, g, o).

    Each layer and direction runs the compiled cell :func:`fastbptt.lstm_forward`.

    Parameters
    ----------
    {layer_parameters}
    proj_size : int, default 0, keyword-only
        torch's projection (LSTMP): with 0 < P < hidden_size, ``h_t = W_hr (o_t *
        tanh(c_t))`` has P features, under ``weight_hr_l{k}`` (P, H) parameters; then
        ``weight_hh_l{k}`` is (4H, P), layer k > 0 reads D*P features, ``output`` is
        (T, B, D*P), ``h_n`` (L*D, B, P) and ``c_n`` (L*D, B, H). 0: none.

    {layer_sections}

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> lstm = fastbptt.LSTM(3, 8, seed=0, dtype=np.float64)
    >>> x = np.ones((5, 2, 3))
    >>> output, (h_n, c_n) = lstm.forward(x, lengths=[5, 2])
    >>> output.shape, c_n.shape
    ((5, 2, 8), (1, 2, 8))
    >>> dx, grads = lstm.backward(np.ones_like(output))
    >>> lstm.d_h0.shape, grads["weight_ih_l0"].shape
    ((1, 2, 8), (32, 3))
    >>> lstmp = fastbptt.LSTM(3, 8, proj_size=2, seed=0)
    >>> output, (h_n, c_n) = lstmp.forward(np.ones((5, 2, 3), np.float32))
    >>> output.shape, h_n.shape, c_n.shape, lstmp.params["weight_hr_l0"].shape
    ((5, 2, 2), (1, 2, 2), (1, 2, 8), (2, 8))
    """
    spec = _LSTM_SPEC

    def forward(self, x, hx=None, lengths=None, check_finite=False):
        return self._run_forward(x, hx, lengths, check_finite)

    __call__ = forward

    def backward(self, d_output, d_hn=None, d_cn=None):
        """As RNN.backward, with d_cn (L*D, B, H) or None; self.d_c0 holds dL/dc0."""
        return self._run_backward(d_output, (d_hn, d_cn))


# The layer class of each cell, keyed by its spec's name ("rnn", "lstm", "gru").
LAYERS = {cls.spec.name: cls for cls in (RNN, LSTM, GRU)}
