"""The models the experiments compare: one recurrent layer (fastbptt.RNN, LSTM or GRU)
and an affine read-out y = h W^T + b, their parameters in one dict for the optimizer.

The cells, initialised as the papers the tasks come from do:

- "rnn":  tanh RNN, torch's default init U(-1/sqrt(H), 1/sqrt(H)) for every parameter;
- "lstm": LSTM, the same init with the forget-gate bias at 1 (b_ih's f rows 1, b_hh's 0:
          their sum is the gate's bias), as Le et al. 2015 and Arjovsky et al. 2016 use;
- "gru":  GRU, torch's default init;
- "irnn": ReLU RNN with W_hh = I and zero biases (Le, Jaitly and Hinton 2015), W_ih
          drawn from N(0, 0.001^2) as there.
"""
from typing import Callable, Mapping, NamedTuple, Optional

import numpy as np

from fastbptt.cells.spec import get_spec
from fastbptt.nn import LAYERS

HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"


def _forget_gate_bias_one(p, spec, H, input_size, rng, dtype):
    """b_ih's forget-gate rows 1, b_hh's 0 (their sum is the gate's bias)."""
    f = spec.gate_names.index("f")
    p["bias_ih_l0"][f * H:(f + 1) * H] = 1
    p["bias_hh_l0"][f * H:(f + 1) * H] = 0


def _identity_recurrence(p, spec, H, input_size, rng, dtype):
    """W_hh = I, W_ih ~ N(0, 0.001^2), zero biases."""
    p["weight_hh_l0"][...] = np.eye(H, dtype=dtype)
    p["weight_ih_l0"][...] = rng.normal(0, 1e-3, (spec.gates * H, input_size))
    p["bias_ih_l0"][...] = 0
    p["bias_hh_l0"][...] = 0


class Recipe(NamedTuple):
    """One model the experiments compare: which cell (a CellSpec name) with which layer
    options and initialisation, and how the report names and draws it."""
    cell: str                   # fastbptt.cells.spec name
    title: str                  # the report's name of the model
    options: Mapping            # the layer's extra options (spec.options)
    init: Optional[Callable]    # (params, spec, H, input_size, rng, dtype) -> None, in place
    color: str                  # matplotlib tab10 colour in every panel
    run_colors: Mapping = {}    # the exploding experiment's runs (unclipped/clipped)


# The module docstring's models, in the report's order.
RECIPES = {
    "rnn": Recipe("rnn", "tanh RNN", {"nonlinearity": "tanh"}, None, "tab:red",
                  {"unclipped": "tab:purple", "clipped": "tab:gray"}),
    "lstm": Recipe("lstm", "LSTM", {}, _forget_gate_bias_one, "tab:blue"),
    "gru": Recipe("gru", "GRU", {}, None, "tab:green"),
    "irnn": Recipe("rnn", "IRNN", {"nonlinearity": "relu"}, _identity_recurrence, "tab:orange",
                   {"unclipped": "tab:pink", "clipped": "tab:olive"}),
}
CELLS = tuple(RECIPES)
CELL_NAMES = {name: recipe.title for name, recipe in RECIPES.items()}


class Model:
    """A one-layer recurrent network with a linear read-out.

    layer: the fastbptt layer (time-major); params: the layer's arrays and the head's
    (HEAD_WEIGHT (V, H), HEAD_BIAS (V,)), the same arrays, so an optimizer on params
    trains the layer.
    """

    def __init__(self, cell, input_size, hidden_size, output_size, seed, dtype=np.float32):
        if cell not in RECIPES:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        rng = np.random.default_rng(seed)
        H = hidden_size
        self.cell = cell
        recipe = RECIPES[cell]
        spec = get_spec(recipe.cell)
        self.layer = LAYERS[spec.name](input_size, H, **recipe.options, dtype=dtype, seed=rng)
        p = self.layer.params
        if recipe.init is not None:
            recipe.init(p, spec, H, input_size, rng, dtype)
        bound = 1 / np.sqrt(H)
        self.params = {**p,
                       HEAD_WEIGHT: rng.uniform(-bound, bound, (output_size, H)).astype(dtype),
                       HEAD_BIAS: np.zeros(output_size, dtype)}

    @property
    def name(self):
        return CELL_NAMES[self.cell]

    @property
    def head(self):
        return self.params[HEAD_WEIGHT], self.params[HEAD_BIAS]

    def forward(self, x):
        """x (T, B, I) -> the layer's output (T, B, H)."""
        return self.layer.forward(x)[0]

    def backward(self, d_output=None, d_last=None):
        """The layer's parameter gradients from dL/d(output) (T, B, H) and/or dL/dh_{T-1}
        (B, H) (many-to-one); a dict keyed like the layer's params."""
        d_hn = None if d_last is None else d_last[None]
        return self.layer.backward(d_output, d_hn=d_hn)[1]

    def with_dtype(self, dtype):
        """A copy of the recurrent layer in another dtype (for the float64 gradient-flow
        profile, whose norms fall below float32's range on long sequences)."""
        options = {k: getattr(self.layer, k) for k in self.layer.spec.options}
        layer = type(self.layer)(self.layer.input_size, self.layer.hidden_size, **options,
                                 dtype=dtype)
        layer.load_state_dict(self.layer.state_dict())
        return layer
