"""Stepper: many single steps of a unidirectional layer stack, validated once.

layer.step(x_t, state) validates the layer's weights, the state and x_t, allocates the new
states and goes through the compiled driver's checks and a forward kernel's call (eight
memoryviews, eight keywords) on every call: right for one step, but most of the cost of a
step at generation sizes (B = 1, H ~ 100), where the arithmetic is one small GEMV. A
Stepper does that work once and then runs every layer's step in one compiled call
(fastbptt._kernels.step.StackStep: the forward kernels' loop body at T = 1, the same
helper calls, so the same numbers to the bit) on buffers it owns:

    x          (B, I)        the input of the next step; the caller writes it in place
    hbuf[k]    (2, B, H)     layer k's hidden state at parity 0 and 1 (and cbuf[k], the
                             LSTM's cell state): a step reads parity p and writes 1 - p
    xbuf[k]    (B, H)        the input of layer k > 0: layer k-1's new h (times its
                             dropout mask in training mode, drawn as layer.step draws it)
    bias, gates, R, scratch  the kernels' bias rows and work buffers, made once

advance() runs one step of every layer and returns the top layer's new h (B, H), a view
that stays valid until the next advance(). A Stepper reads the weights it was made with
(the layer's arrays themselves: in-place updates are seen, replaced arrays are not).

Its twin is layer.step itself: with the reference backend (or a layer whose parameters
are not the plain four per layer, which these kernels do not know, or an empty batch) a
Stepper advances through layer.step, the same numbers more slowly.
"""
import numpy as np

from fastbptt.cells.args import check_forward_args, check_sizes
from fastbptt.cells.spec import step_form
from fastbptt.runtime.backend import get_backend
from fastbptt.runtime.validation import as_float_array


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
        self._x = np.zeros((B, layer.input_size), layer.dtype)
        self._index = np.zeros(B, np.intp)
        backend = layer.backend if layer.backend is not None else get_backend()
        # B = 0 has nothing to compute: layer.step returns its empty arrays
        self.compiled = backend == "compiled" and B > 0 and _plain_parameters(layer)
        if not self.compiled:
            self._state = layer.state_from_arrays([s.copy() for s in initial])
            return
        # imported here: the reference backend needs no build
        from fastbptt._kernels.step import StackStep
        transposed = step_form(spec, B, H, layer.dtype) == "transposed"
        dtype, options = layer.dtype, layer.options
        xs, W_ih, W_hh, bias, hbuf, cbuf, gates, R, scratch = ([] for _ in range(9))
        for k in range(L):
            x_k = self._x if k == 0 else np.zeros((B, H), dtype)
            # the one validation of this layer's weights (and the shapes of x_k and the
            # states), as driver.step makes it on every call
            args = check_forward_args(spec, x_k[None], [s[k] for s in initial],
                                      *layer._weights(k, ""), False, **options)
            xs.append(x_k)
            W_ih.append(args.W_ih)
            W_hh.append(args.W_hh)
            bias.append(spec.bias_rows(args.b_ih, args.b_hh, H))
            states = [np.empty((2, B, H), dtype) for _ in spec.states]
            for buf, s in zip(states, initial):
                buf[0] = s[k]
            hbuf.append(states[0])
            cbuf.append(states[1] if len(states) == 2 else None)
            work = _work_buffers(spec, B, H, dtype, transposed)
            gates.append(work[0])
            R.append(work[1])
            scratch.append(work[2])
        self._kernel = StackStep(spec.name, args.code, transposed, xs, W_ih, W_hh, bias,
                                 hbuf, cbuf, gates, R, scratch, self._index)
        self._hbuf, self._cbuf = hbuf, cbuf
        self._top = (hbuf[-1][0], hbuf[-1][1])   # the top layer's h at each parity
        self._parity = 0                         # the parity holding the current state

    @property
    def x(self):
        """The input of the next step (B, I), to be written in place (the compiled step
        holds its address, so it cannot be rebound)."""
        return self._x

    @property
    def index(self):
        """The next step's one-hot inputs for advance_index(): row b is e_{index[b]}; (B,)
        intp, to be written in place."""
        return self._index

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
        masks = layer.dropout_masks(1, self.B) if layer.num_layers > 1 else None
        p = self._parity
        self._kernel.advance(p, masks)
        self._parity = p = 1 - p
        return self._top[p]

    def advance_index(self):
        """One step of every layer whose inputs are one-hot rows, row b = e_{index[b]}
        (self.index, written in place): the numbers of advance() with that x, without
        the input product's other I - 1 columns (layer 0's X W_ih^T is column index[b] of
        W_ih). ValueError if an index lies outside [0, input_size)."""
        if not self.compiled:
            index = self._index
            if self.B and (index.min() < 0 or index.max() >= self._x.shape[1]):
                raise ValueError(f"index must lie in [0, input_size) = "
                                 f"[0, {self._x.shape[1]}), got {index}")
            self._x[...] = 0
            self._x[np.arange(self.B), index] = 1
            return self.advance()
        masks = self.layer.dropout_masks(1, self.B) if self.layer.num_layers > 1 else None
        p = self._parity
        self._kernel.advance(p, masks, True)
        self._parity = p = 1 - p
        return self._top[p]

    def state(self):
        """The current state in forward's form: (L, B, H) new arrays (LSTM: (h, c))."""
        layer = self.layer
        if not self.compiled:
            return layer.state_from_arrays([np.array(s) for s in
                                            layer.state_arrays(self._state)])
        p = self._parity
        bufs = [self._hbuf] if self._cbuf[0] is None else [self._hbuf, self._cbuf]
        return layer.state_from_arrays([np.stack([buf[p] for buf in b]) for b in bufs])


def _work_buffers(spec, B, H, dtype, transposed):
    """(gates, R, scratch) of the compiled step of spec's cell (_kernels/step.pyx): the
    gate buffer (B, work_gates*H) of the LSTM ([i f g o]) and the GRU ([r z n R_n]; the
    RNN computes in its new h's rows), the GRU's R = h W_hh^T (B, 3H), and the transposed
    product's scratch (G*H*B); None where the cell has none."""
    gates = None if spec.work_gates == 1 else np.empty((B, spec.work_gates * H), dtype)
    R = np.empty((B, 3 * H), dtype) if spec.name == "gru" else None
    return gates, R, np.empty(spec.gates * H * B, dtype) if transposed else None


def _plain_parameters(layer):
    """Whether the layer's parameters are exactly the four per layer (weight_ih_l{k},
    weight_hh_l{k}, and the biases when layer.bias) that the cells' kernels take."""
    expected = set()
    for k in range(layer.num_layers):
        expected.update((f"weight_ih_l{k}", f"weight_hh_l{k}"))
        if layer.bias:
            expected.update((f"bias_ih_l{k}", f"bias_hh_l{k}"))
    return set(layer.params) == expected
