"""The one traversal of a stack of recurrent layers and directions, with an explicit tape.

Layer k (0 <= k < L) and direction d (0 forward, 1 reverse when bidirectional) run the
cell function over layer k's input; index i = k*D + d orders everything per (layer,
direction) as torch does (h_n (L*D, B, H)). The reverse direction reads each sequence
backwards within its own length, as torch does with packed sequences: position t <
lengths[b] of the reversed sequence is step lengths[b] - 1 - t. Layer k+1's input is
[forward, reverse] concatenated on the features, (T, B, D*H).

With dropout masks M_k (T, B, D*H), k < L-1 (layers.py draws them), layer k+1's input is
Y_k * M_k and backward multiplies the gradient reaching it by M_k again: the chain rule of
an element-wise product with a constant.

The Tape is everything backward needs from forward: the cells' caches (index i), the
reversal index, x's shape, the backend that ran and the dropout masks. Layers keep the last one
(layer.tape); truncated BPTT and diagnostics hold their own.
"""
import functools
import importlib
from typing import NamedTuple, Optional

import numpy as np

from fastbptt.cells import driver
from fastbptt.cells.spec import LSTMP
from fastbptt.runtime.backend import get_backend, implementation


class Tape(NamedTuple):
    """What a layer's backward needs from its forward (see the module docstring)."""
    caches: list                        # the cells' caches, index k*D + d
    reverse_index: Optional[np.ndarray]  # (T, B), or None when unidirectional
    x_shape: tuple                      # the caller's x, as given
    backend: Optional[str]              # None: the public functions (the switch)
    masks: Optional[list] = None        # dropout masks M_k (T, B, D*H), k < L-1, or None
    params: tuple = ()                  # (key, array, version) at forward (versions.py)


def cell_function(backend, name):
    """The cell function `name` (e.g. "lstm_forward") a layer calls. backend None: the
    public one, which follows the switch (fastbptt.set_backend / use_backend) and whose
    backward goes where its cache came from; "compiled" or "reference" pins it."""
    if backend is None:
        return getattr(importlib.import_module("fastbptt"), name)
    return implementation(name, backend)


def step_function(backend, spec):
    """A function (x (1, B, I), states, W_ih, W_hh, b_ih, b_hh, **options) -> the new
    states (B, H) each, in spec.states order, for one step that no backward follows:
    the compiled driver's step (no cache) or the reference forward's final states.
    backend None follows the switch, as cell_function does."""
    key = (get_backend() if backend is None else backend, spec)
    try:
        return _step_functions[key]
    except KeyError:
        pass
    if key[0] == "compiled" and spec is not LSTMP:
        function = functools.partial(driver.step, spec)
    else:
        # the driver's step keeps every state (B, H); the projected LSTM's h is (B, P),
        # so its step is a one-step forward (whose cache is dropped at once)
        forward = implementation(spec.forward_name, key[0])

        def function(x, states, *weights, **options):
            return forward(x, *states, *weights, **options)[1].final_states()
    _step_functions[key] = function
    return function


_step_functions = {}   # (backend, spec) -> step_function's answer, made once


def reversal_index(T, B, lengths):
    """(T, B) time index that reverses each sequence within its own length and leaves the
    padding in place; it is its own inverse."""
    t = np.arange(T)[:, None]
    if lengths is None:
        return np.broadcast_to(T - 1 - t, (T, B))
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def gather_time(a, index):
    """a (T, B, F) with a[index[t, b], b] at (t, b)."""
    return a[index, np.arange(a.shape[1])[None, :]]


def _directions(layer):
    return ("", "_reverse")[:layer.num_directions]


def _weights(layer, k, sfx):
    p = layer.params
    return (p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"],
            p.get(f"bias_ih_l{k}{sfx}"), p.get(f"bias_hh_l{k}{sfx}"))


def stack_forward(layer, forward, seq, states, lengths, x_shape, backend=None, masks=None):
    """Run every layer and direction over seq (T, B, I) time-major from the initial
    states (a list of (L*D, B, H) arrays in spec.states order), layer k's output times
    masks[k] on its way up when masks is given. Returns (output (T, B, D*H), the final
    states as a list like `states`, Tape)."""
    T, B = seq.shape[:2]
    D = layer.num_directions
    reverse_index = reversal_index(T, B, lengths) if D == 2 else None
    finals = [np.empty_like(s) for s in states]
    options = layer.options
    caches = []
    layer_input = seq
    for k in range(layer.num_layers):
        outputs = []
        for d, sfx in enumerate(_directions(layer)):
            i = k * D + d
            inp = layer_input if d == 0 else gather_time(layer_input, reverse_index)
            h, cache = forward(inp, *(s[i] for s in states), *_weights(layer, k, sfx),
                               lengths=lengths, **options, **layer.cell_keywords(k, sfx))
            for final, value in zip(finals, cache.final_states()):
                final[i] = value
            outputs.append(h if d == 0 else gather_time(h, reverse_index))
            caches.append(cache)
        layer_input = np.concatenate(outputs, axis=2) if D == 2 else outputs[0]
        if masks is not None and k < layer.num_layers - 1:
            layer_input = layer_input * masks[k]
    return layer_input, finals, Tape(caches, reverse_index, x_shape, backend, masks)


def stack_backward(layer, backward, tape, d_output, d_finals):
    """Backpropagate through the stack: d_output (T, B, D*H) time-major or None, d_finals
    a list of (L*D, B, H) arrays or None in spec.states order. Returns (d_input (T, B, I)
    time-major, grads keyed like layer.params, the initial states' gradients as a list of
    (L*D, B, H) arrays)."""
    # H: the width of h and of each direction's output (P with a projection)
    H, D, L = layer.real_hidden_size, layer.num_directions, layer.num_layers
    x_shape = tape.x_shape
    B = x_shape[0] if layer.batch_first else x_shape[1]
    n_states = len(layer.spec.states)
    grads = {}
    d_init = [np.empty((L * D, B, n), layer.dtype) for n in layer.state_sizes()]
    d_layer = d_output
    for k in reversed(range(L)):
        if tape.masks is not None and k < L - 1 and d_layer is not None:
            d_layer = d_layer * tape.masks[k]   # d(Y_k * M_k)/dY_k = M_k
        d_input = None
        for d, sfx in enumerate(_directions(layer)):
            i = k * D + d
            dh = None if d_layer is None else d_layer[:, :, d * H:(d + 1) * H]
            if dh is not None and d == 1:
                dh = gather_time(dh, tape.reverse_index)
            finals = [None if v is None else v[i] for v in d_finals]
            if dh is None and all(f is None for f in finals):
                # nothing reaches this direction: its gradients are zero
                finals[0] = np.zeros((B, H), layer.dtype)
            g = backward(dh, tape.caches[i], *finals)
            for target, value in zip(d_init, g[1:1 + n_states]):
                target[i] = value
            grads[f"weight_ih_l{k}{sfx}"] = g.dW_ih
            grads[f"weight_hh_l{k}{sfx}"] = g.dW_hh
            if layer.bias:
                grads[f"bias_ih_l{k}{sfx}"] = g.db_ih
                grads[f"bias_hh_l{k}{sfx}"] = g.db_hh
            if layer.proj_size:
                grads[f"weight_hr_l{k}{sfx}"] = g.dW_hr
            dx = g.dx if d == 0 else gather_time(g.dx, tape.reverse_index)
            d_input = dx if d_input is None else d_input + dx
        d_layer = d_input
    return d_layer, grads, d_init
