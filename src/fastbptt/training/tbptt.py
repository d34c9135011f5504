"""Truncated backpropagation through time for the layer classes RNN, LSTM and GRU.

TruncatedBPTT(layer, k1, k2=None) walks a long sequence (T, B, I) in windows and carries
the recurrent state (h, and c for an LSTM) across them, detached: no gradient flows from
one window into an earlier one. k2=None means k2 = k1.

k1 = k2 = k (word-language-model training): consecutive chunks [0, k), [k, 2k), ...,
the last one shorter; each is forwarded from the state the previous chunk ended in,
its loss counts on all its steps, and backpropagation stops at its first step.

k1 < k2 (Williams & Peng's BPTT(k1, k2)): every k1 steps, backpropagate k2 steps. The
window ending at `stop` (k1, 2 k1, ..., and T) counts the loss on its last k1 steps
[loss_start, stop) and is forwarded from the state at start = loss_start - (k2 - k1)
(clipped at the beginning of the sequence or the last reset): the k2 - k1 steps
[start, loss_start) are burn-in, forwarded again and backpropagated through with zero
loss gradient, so the counted losses' gradients reach k2 steps back at most.

The state the next window starts from. The next window starts at s = stop - (k2 - k1),
inside the current window. Its forward runs as two calls, [start, s) and [s, stop): the
first call's final state IS the state at s, exactly (the same kernel, inputs and
weights), at no extra cost (no step is forwarded twice within a window; the only extras
are one more kernel call and a sum of two gradient dicts). Backward runs the second
piece first and hands its dL/dh0 (and dL/dc0) to the first piece as dL/dh_n. The
optimizer may change the weights between windows, so the next window forwards [s, stop)
again with the new weights from the state stored at s (computed with the weights of
the window that stored it), which is what BPTT(k1, k2) does; per k1 counted steps the
cost is k2 forward and k2 backward steps. With k1 = k2, s = stop and no split happens.

Resets. run(x, loss_fn, resets=r) with r a bool array (T,): r[t] zeroes the whole state
before step t (a document boundary). Windows never cross a reset: each stretch between
resets is scheduled on its own, from a zero state. tb.reset() zeroes the state between
calls (all rows, or a bool mask / index array of batch rows, for streams of different
documents side by side). Without resets the state carries from one run() call to the
next, so a stream may be fed in pieces (burn-in never reaches into an earlier call).
"""
from dataclasses import dataclass

import numpy as np

from fastbptt.nn.layers import _RecurrentLayer
from fastbptt.runtime.validation import as_float_array


@dataclass(frozen=True)
class TruncatedBPTTWindow:
    """One window of :meth:`TruncatedBPTT.run`.

    Attributes
    ----------
    start, stop : int
        The steps forwarded and backpropagated, [start, stop).
    loss_start : int
        The first step whose loss counts (start <= loss_start < stop).
    loss : float
        What ``loss_fn`` returned.
    grads : dict of str to ndarray
        The layer's parameter gradients merged with the extra gradients ``loss_fn``
        returned, ready for ``opt.step``.
    dx : ndarray
        dL/dx of the window's input, shaped like ``x[start:stop]`` (time axis 1 when
        batch_first).
    """
    start: int
    stop: int
    loss_start: int
    loss: float
    grads: dict
    dx: np.ndarray


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def window_schedule(T, k1, k2, resets=None):
    """The windows of BPTT(k1, k2) over T steps, as (start, loss_start, stop, next_start)
    tuples; next_start is where the next window begins (== stop after the last window of
    a stretch between resets, where the state runs on to the end unsplit)."""
    bounds = [0] + [t for t in range(1, T) if resets is not None and resets[t]] + [T]
    windows = []
    for seg_start, seg_stop in zip(bounds[:-1], bounds[1:]):
        loss_start = seg_start
        while loss_start < seg_stop:
            stop = min(loss_start + k1, seg_stop)
            start = max(loss_start - (k2 - k1), seg_start)
            next_start = max(stop - (k2 - k1), seg_start) if stop < seg_stop else stop
            windows.append((start, loss_start, stop, next_start))
            loss_start = stop
    return windows


class TruncatedBPTT:
    """Truncated BPTT over a unidirectional fastbptt.RNN, LSTM or GRU.

    Walks a long sequence in windows and carries the recurrent state across them, detached
    (no gradient flows into an earlier window). With k1 = k2 = k: consecutive chunks of k
    steps. With k1 < k2 (Williams and Peng's BPTT(k1, k2)): every k1 steps, backpropagate
    k2 steps; the k2 - k1 earlier steps are burn-in with zero loss gradient. The module
    docstring of ``fastbptt.training.tbptt`` has the details (the split forward that makes
    the carried state exact at no extra cost, resets).

    Parameters
    ----------
    layer : fastbptt.RNN, fastbptt.LSTM or fastbptt.GRU
        Unidirectional; time-major or batch_first.
    k1 : int
        Steps between updates, >= 1.
    k2 : int or None
        Steps backpropagated per window, >= k1; None means k1.

    Attributes
    ----------
    state : ndarray, tuple of ndarray, or None
        The carried state, h (L, B, H) or (h, c) for an LSTM, detached copies; None before
        the first window and after :meth:`reset`.

    Raises
    ------
    TypeError, ValueError
        Not a fastbptt recurrent layer, a bidirectional one, or k1, k2 out of range.

    Notes
    -----
    ``run(x, loss_fn, resets=None)`` yields one :class:`TruncatedBPTTWindow` per window;
    update the parameters between windows. ``loss_fn(output, loss_start, stop)`` gets the
    layer output of the counted steps [loss_start, stop) and returns ``(loss, d_output)``
    or ``(loss, d_output, extra_grads)``, with ``extra_grads`` a dict of the loss's own
    parameter gradients (an output layer's) whose keys must not collide with the layer's.
    ``resets`` (bool, (T,)) zeroes the state before the marked steps; windows never cross
    them. ``reset(rows=None)`` zeroes the carried state (all of it, or chosen batch rows).

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> lstm = fastbptt.LSTM(1, 4, dtype=np.float64, seed=0)
    >>> opt = fastbptt.SGD(lstm.params, lr=0.1)
    >>> x = np.ones((50, 2, 1))
    >>> def loss_fn(output, start, stop):
    ...     return float((output ** 2).sum()), 2 * output
    >>> tbptt = fastbptt.TruncatedBPTT(lstm, k1=20)
    >>> [(w.start, w.stop) for w in tbptt.run(x, loss_fn) if opt.step(w.grads) is None]
    [(0, 20), (20, 40), (40, 50)]
    >>> tbptt.state[0].shape                # the carried (h, c)
    (1, 2, 4)
    """

    def __init__(self, layer, k1, k2=None):
        if not isinstance(layer, _RecurrentLayer):
            raise TypeError(f"layer must be a fastbptt RNN, LSTM or GRU, got "
                            f"{type(layer).__name__}")
        if layer.bidirectional:
            raise ValueError("truncated BPTT needs a unidirectional layer: the reverse "
                             "direction of a bidirectional one reads the future")
        self.layer = layer
        self.k1 = _check_int("k1", k1, 1)
        self.k2 = self.k1 if k2 is None else _check_int("k2", k2, 1)
        if self.k2 < self.k1:
            raise ValueError(f"k2 must be >= k1 (backpropagate at least as many steps as "
                             f"are counted), got k1={self.k1}, k2={self.k2}")
        self.state = None

    # ------------------------------------------------------------ state

    def reset(self, rows=None):
        """Zero the carried state: all of it (rows=None), or the batch rows selected by a
        bool mask (B,) or an integer index array."""
        if rows is None or self.state is None:
            self.state = None
            return
        B = self._state_arrays()[0].shape[1]
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (B,):
                raise ValueError(f"rows as a bool mask must have shape (B,) = ({B},), "
                                 f"got {rows.shape}")
        elif np.issubdtype(rows.dtype, np.integer):
            if rows.ndim != 1 or (rows.size and (rows.min() < -B or rows.max() >= B)):
                raise ValueError(f"rows as indices must be a 1-D array of batch rows in "
                                 f"[-{B}, {B}), got {rows.tolist()}")
        else:
            raise TypeError(f"rows must be None, a bool mask or an integer index array, "
                            f"got dtype {rows.dtype}")
        fresh = []
        for s in self._state_arrays():
            s = s.copy()   # a new array: a caller holding the old tb.state keeps it
            s[:, rows] = 0
            fresh.append(s)
        self.state = self.layer.state_from_arrays(fresh)

    def _state_arrays(self):
        return list(self.layer.state_arrays(self.state))

    # ------------------------------------------------------------ the walk

    def run(self, x, loss_fn, resets=None):
        """Yield a TruncatedBPTTWindow per window over x (T, B, I), or (B, T, I) when
        layer.batch_first; the caller updates the parameters between windows."""
        layer = self.layer
        x = as_float_array("x", x, 3, layer.dtype)
        if x.shape[-1] != layer.input_size:
            raise ValueError(f"x must have {layer.input_size} features (input_size) in its "
                             f"last dimension, got shape {x.shape}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        time_axis = 1 if layer.batch_first else 0
        T, B = x.shape[time_axis], x.shape[1 - time_axis]
        if self.state is not None:
            carried_B = self._state_arrays()[0].shape[1]
            if carried_B != B:
                raise ValueError(f"x has batch size {B} but the carried state has "
                                 f"{carried_B} rows; call reset() to start afresh")
        if resets is not None:
            resets = np.asarray(resets)
            if resets.dtype != bool or resets.shape != (T,):
                raise ValueError(f"resets must be a bool array of shape (T,) = ({T},), got "
                                 f"{resets.dtype} {resets.shape}")
        return self._walk(x, loss_fn, resets, T, B, time_axis)

    def _walk(self, x, loss_fn, resets, T, B, time_axis):
        if resets is not None and T and resets[0]:
            self.state = None
        for start, loss_start, stop, next_start in window_schedule(T, self.k1, self.k2,
                                                                   resets):
            if resets is not None and start > 0 and resets[start]:
                self.state = None
            yield self._window(x, loss_fn, start, loss_start, stop, next_start, B,
                               time_axis)

    def _time_slice(self, a, lo, hi, time_axis):
        return a[lo:hi] if time_axis == 0 else a[:, lo:hi]

    def _window(self, x, loss_fn, start, loss_start, stop, next_start, B, time_axis):
        layer = self.layer
        # Forward in up to two pieces, split where the next window starts (see the module
        # docstring): the first piece's final state is the next window's initial state.
        cuts = sorted({start, next_start, stop})
        pieces = list(zip(cuts[:-1], cuts[1:]))
        state = self.state
        # next_start == start when the burn-in is clipped at the sequence start (or a
        # reset) for this window and the next: the next one starts from this one's state
        next_state = state if next_start == start else None
        outputs, tapes = [], []
        for lo, hi in pieces:
            out, final, tape = layer.forward_with_tape(self._time_slice(x, lo, hi, time_axis),
                                                       state)
            outputs.append(out)
            tapes.append(tape)
            if hi == next_start:
                next_state = final
            state = final

        output = np.concatenate(outputs, axis=time_axis) if len(outputs) > 1 else outputs[0]
        counted = self._time_slice(output, loss_start - start, stop - start, time_axis)
        loss, d_counted, extra = self._call_loss(loss_fn, counted, loss_start, stop)

        # d_output over the whole window: zero on the burn-in steps [start, loss_start)
        d_window = np.zeros(output.shape, layer.dtype)
        self._time_slice(d_window, loss_start - start, stop - start, time_axis)[...] = \
            d_counted
        grads, dxs, d_final = None, [], None
        for (lo, hi), tape in reversed(list(zip(pieces, tapes))):
            d_piece = self._time_slice(d_window, lo - start, hi - start, time_axis)
            dx, g, d_final = layer.backward_with_tape(tape, d_piece, d_final)
            dxs.append(dx)
            grads = g if grads is None else {k: grads[k] + g[k] for k in grads}
        dx = np.concatenate(dxs[::-1], axis=time_axis) if len(dxs) > 1 else dxs[0]

        clash = [k for k in extra if k in grads]
        if clash:
            raise ValueError(f"loss_fn's extra gradients {clash} collide with the layer's "
                             f"parameter names")
        grads.update(extra)
        self.state = next_state
        return TruncatedBPTTWindow(start, stop, loss_start, loss, grads, dx)

    def _call_loss(self, loss_fn, counted, loss_start, stop):
        result = loss_fn(counted, loss_start, stop)
        if not (isinstance(result, tuple) and len(result) in (2, 3)):
            raise TypeError("loss_fn must return (loss, d_output) or "
                            "(loss, d_output, extra_grads)")
        loss, d_out = result[0], result[1]
        extra = result[2] if len(result) == 3 else {}
        try:
            loss = float(loss)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"loss_fn's loss must be a scalar, got {loss!r}") from exc
        if not isinstance(d_out, np.ndarray) or d_out.shape != counted.shape:
            shape = getattr(d_out, "shape", type(d_out).__name__)
            raise ValueError(f"loss_fn's d_output must be an array shaped like the output "
                             f"it was given, {counted.shape}, got {shape}")
        if d_out.dtype != self.layer.dtype:
            raise TypeError(f"loss_fn's d_output must have the layer's dtype "
                            f"{self.layer.dtype}, got {d_out.dtype}")
        if not isinstance(extra, dict):
            raise TypeError(f"loss_fn's extra_grads must be a dict, got "
                            f"{type(extra).__name__}")
        return loss, d_out, extra
