"""Stepper: many single steps of a unidirectional layer stack, validated once.

layer.step(x_t, state) validates the layer's weights, the state and x_t, allocates the new
states and goes through the compiled driver's checks on every call: right for one step,
but most of the cost of a step at generation sizes (B = 1, H ~ 100), where the arithmetic
is one small GEMV. A Stepper does that work once and then runs each layer's compiled
forward kernel at T = 1 (the adapter's run_forward_kernel, the same call driver.step
makes, so the numbers are the same to the bit) on buffers it owns:

    x        (B, I)          the input of the next step; the caller writes it in place
    ring_s   (R + 1, B, H)   per layer and state s (h, and c for the LSTM): step j reads
                             the state at row j and writes row j + 1; after row R, row R
                             is copied back to row 0 (one copy every R steps instead of
                             one per step; the kernels read the state as a (2, B, H) view)
    x_k      (1, B, H)       the input of layer k > 0: layer k-1's new h (times its
                             dropout mask in training mode, as layer.step does)

advance() runs one step of every layer and returns the top layer's new h (B, H), a view
that stays valid until the next advance(). A Stepper reads the weights it was made with
(the layer's arrays themselves: in-place updates are seen, replaced arrays are not).

Its twin is layer.step itself: with the reference backend (or a layer whose parameters
are not the plain four per layer, which the kernels here do not know) a Stepper advances
through layer.step, the same numbers more slowly.
"""
import importlib

import numpy as np

from fastbptt.cells.args import check_forward_args, check_sizes
from fastbptt.cells.spec import step_form
from fastbptt.runtime.backend import get_backend
from fastbptt.runtime.validation import as_float_array

RING = 64   # steps between the copies of the last state back to row 0


class Stepper:
    """Advance a unidirectional layer (RNN, LSTM or GRU, any num_layers) one step at a
    time for B streams, from `state` (forward's form, (L, B, H) arrays, or None for
    zeros). Write the next input into `stepper.x` (B, I) and call `advance()` (or pass
    it, checked and copied: `advance(x_t)`); `state()` gives the current state in
    forward's form (new arrays). ValueError or TypeError, naming the argument, for a
    bidirectional layer, a B that is not an int >= 0, a state of the wrong shape or dtype
    and an x_t of the wrong shape or dtype."""

    def __init__(self, layer, B=1, state=None):
        if getattr(layer, "bidirectional", False):
            raise ValueError("a Stepper needs a unidirectional layer: the reverse "
                             "direction reads the sequence from its end")
        if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B < 0:
            raise ValueError(f"B must be an int >= 0, got {B!r}")
        self.layer = layer
        self.B = B = int(B)
        spec, H, L = layer.spec, layer.hidden_size, layer.num_layers
        # before anything of these sizes is allocated, as layer.step checks
        check_sizes(1, B, max(layer.input_size, H), H, spec.gates, spec.work_gates)
        # validated (and zero-filled) like layer.step's: (L, B, H) each, spec.states order
        initial = layer.initial_states(state, B)
        self.x = np.zeros((B, layer.input_size), layer.dtype)
        backend = layer.backend if layer.backend is not None else get_backend()
        # B = 0 has nothing to compute: layer.step returns its empty arrays
        self.compiled = backend == "compiled" and B > 0 and _plain_parameters(layer)
        if not self.compiled:
            self._state = layer.state_from_arrays([s.copy() for s in initial])
            return
        self._run = importlib.import_module(spec.adapter).run_forward_kernel
        self._form = step_form(spec, B, H, layer.dtype)
        self._args, self._views, self._rings, self._inputs = [], [], [], []
        options = layer.options
        for k in range(L):
            x_k = self.x[None] if k == 0 else np.zeros((1, B, H), layer.dtype)
            # the one validation of this layer's weights (and the shapes of x_k and the
            # states), as driver.step makes it on every call
            args = check_forward_args(spec, x_k, [s[k] for s in initial],
                                      *layer._weights(k, ""), False, **options)
            # the kernel reads x_k itself (the validated x is x_k or a copy of it)
            self._args.append(args._replace(x=x_k))
            rings = [np.empty((RING + 1, B, H), layer.dtype) for _ in spec.states]
            for ring, s in zip(rings, initial):
                ring[0] = s[k]
            self._rings.append(rings)
            # the (2, B, H) view of every state for each of the R steps, made once
            self._views.append([[ring[j:j + 2] for ring in rings] for j in range(RING)])
            self._inputs.append(x_k)
        self._j = 0   # the row of the rings holding the current state

    def advance(self, x_t=None):
        """One step of every layer on the input in self.x (x_t (B, I), when given, is
        checked and copied there first); the top layer's new h (B, H)."""
        layer = self.layer
        if x_t is not None:
            x_t = as_float_array("x_t", x_t, 2, layer.dtype, contiguous=False)
            if x_t.shape != self.x.shape:
                raise ValueError(f"x_t must have shape (B, input_size) = {self.x.shape}, "
                                 f"got {x_t.shape}")
            self.x[...] = x_t
        if not self.compiled:
            out, self._state = layer.step(self.x, self._state)
            return out
        j = self._j
        if j == RING:
            for rings in self._rings:
                for ring in rings:
                    ring[0] = ring[RING]
            j = 0
        masks = layer.dropout_masks(1, self.B) if layer.num_layers > 1 else None
        run, form, views, inputs = self._run, self._form, self._views, self._inputs
        L = len(views)
        for k, args in enumerate(self._args):
            run(args, views[k][j], form)
            if k + 1 < L:
                h = views[k][j][0][1]   # layer k's new h (B, H)
                if masks is None:
                    np.copyto(inputs[k + 1][0], h)
                else:
                    np.multiply(h, masks[k][0], out=inputs[k + 1][0])
        self._j = j + 1
        return self._views[-1][j][0][1]

    def state(self):
        """The current state in forward's form: (L, B, H) new arrays (LSTM: (h, c))."""
        if not self.compiled:
            return self.layer.state_from_arrays([np.array(s) for s in
                                                 self.layer.state_arrays(self._state)])
        j = self._j
        n = len(self.layer.spec.states)
        return self.layer.state_from_arrays(
            [np.stack([rings[i][j] for rings in self._rings]) for i in range(n)])


def _plain_parameters(layer):
    """Whether the layer's parameters are exactly the four per layer (weight_ih_l{k},
    weight_hh_l{k}, and the biases when layer.bias) that the cells' kernels take."""
    expected = set()
    for k in range(layer.num_layers):
        expected.update((f"weight_ih_l{k}", f"weight_hh_l{k}"))
        if layer.bias:
            expected.update((f"bias_ih_l{k}", f"bias_hh_l{k}"))
    return set(layer.params) == expected
