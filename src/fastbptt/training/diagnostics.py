"""Gradient-flow diagnostics: how the gradient reaching each hidden state grows or fades
going back in time, per layer of a unidirectional fastbptt.RNN, LSTM or GRU.

For layer k (0 = the bottom) and step t, with g_t = dL/dh_t^k the total gradient
reaching h_t (the direct term, d_output[t] for the top layer or the gradient flowing
down from layer k+1 at step t, plus everything flowing back from steps t+1..T-1):

    grad_norm[k, t]     = mean over the batch of ||g_t[b]||_2                     (L, T)
    jacobian_norm[k, t] = mean over the batch of ||dh_{T-1}/dh_t [b]||_F          (L, T)

The Jacobian goes through layer k's own recurrence only: its input sequence (the layer
below's output) is held fixed, and for an LSTM so is c_t (the partial derivative with
respect to h_t). jacobian_norm[:, T-1] = sqrt(H), the norm of the identity. A Jacobian
norm that falls geometrically going back in time is the vanishing gradient.

This runs its own forward and backward in NumPy with the reference twins' per-step
math (fastbptt.reference.*_backward_step), whatever layer.backend says: it is a
diagnostic, not a hot path. Cost: the gradient norms one reference forward+backward;
the Jacobian pushes an identity back through every step, H vectors per batch row,
about 2 T B G H^3 flops per layer (G = 1, 4, 3 gates); pass jacobian=False to skip it.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fastbptt.nn.layers import _RecurrentLayer
from fastbptt.runtime.validation import as_float_array


@dataclass(frozen=True)
class GradientFlow:
    """What :func:`gradient_flow` measured.

    Attributes
    ----------
    grad_norm : ndarray, shape (L, T), float64
        Per layer and step, the batch mean of ||dL/dh_t||, the total gradient reaching h_t.
    jacobian_norm : ndarray, shape (L, T), float64, or None
        Per layer and step, the batch mean of ||dh_{T-1}/dh_t||_F through the layer's own
        recurrence (``jacobian_norm[:, -1] = sqrt(H)``); None when not asked for.
    """
    grad_norm: np.ndarray
    jacobian_norm: Optional[np.ndarray]


def _mean_row_norm(g):
    """Mean over the batch (axis -2) of the L2 norm over everything else: for (B, H) the
    rows' vector norms, for (H, B, H) (an identity pushed back) the Frobenius norms."""
    sq = np.sum(g.astype(np.float64, copy=False) ** 2, axis=-1)
    if g.ndim == 3:
        sq = np.sum(sq, axis=0)
    return float(np.mean(np.sqrt(sq)))


def gradient_flow(layer, x, d_output, hx=None, jacobian=True):
    """Measure the gradient flow of L = sum(output * d_output) through a unidirectional layer.

    A geometric fall of either norm going back in time is the vanishing gradient; a rise,
    the exploding one. It runs the NumPy reference math; the Jacobian costs about
    2 T B G H^3 flops per layer (``jacobian=False`` skips it).

    Parameters
    ----------
    layer : fastbptt.RNN, fastbptt.LSTM or fastbptt.GRU
        Not bidirectional.
    x : ndarray, shape (T, B, I), or (B, T, I) with ``layer.batch_first``
    d_output : ndarray
        dL/d(output), shaped like the layer's output.
    hx : ndarray, tuple of ndarray, or None
        The initial state as ``layer.forward`` takes it (h0 (L, B, H), or (h0, c0) for an
        LSTM); None for zeros.
    jacobian : bool, default True
        Also measure the Jacobian norms.

    Returns
    -------
    GradientFlow
        ``grad_norm`` and ``jacobian_norm``, (L, T) float64 arrays.

    Raises
    ------
    TypeError, ValueError
        Not a fastbptt recurrent layer, a bidirectional one, or arrays of the wrong shape.

    See Also
    --------
    plot_gradient_flow : draws both on a log scale.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> rnn = fastbptt.RNN(2, 8, dtype=np.float64, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((30, 4, 2))
    >>> flow = fastbptt.gradient_flow(rnn, x, np.ones((30, 4, 8)))
    >>> flow.grad_norm.shape, flow.jacobian_norm.shape
    ((1, 30), (1, 30))
    >>> bool(flow.jacobian_norm[0, 0] < flow.jacobian_norm[0, -1])   # falls going back
    True
    """
    if not isinstance(layer, _RecurrentLayer):
        raise TypeError(f"layer must be a fastbptt RNN, LSTM or GRU, got "
                        f"{type(layer).__name__}")
    if layer.bidirectional:
        raise ValueError("gradient_flow needs a unidirectional layer")
    if getattr(layer, "proj_size", 0):
        # its per-step Jacobians would go through W_hr too; not written yet
        raise ValueError("gradient_flow does not take an LSTM with proj_size yet")
    if not isinstance(jacobian, (bool, np.bool_)):
        raise TypeError(f"jacobian must be a bool, got {jacobian!r}")
    L, H = layer.num_layers, layer.hidden_size
    n_states = len(layer.spec.states)
    x = as_float_array("x", x, 3, layer.dtype)
    if x.shape[-1] != layer.input_size:
        raise ValueError(f"x must have {layer.input_size} features (input_size) in its "
                         f"last dimension, got shape {x.shape}")
    T = x.shape[1] if layer.batch_first else x.shape[0]
    B = x.shape[0] if layer.batch_first else x.shape[1]
    if T == 0:
        raise ValueError("x has no time steps")
    d_output = as_float_array("d_output", d_output, 3, layer.dtype)
    out_shape = (B, T, H) if layer.batch_first else (T, B, H)
    if d_output.shape != out_shape:
        raise ValueError(f"d_output must have the layer output's shape {out_shape}, got "
                         f"{d_output.shape}")
    # the reference caches: each step's states and gates, and their step_back
    _, _, tape = layer.forward_with_tape(x, hx, backend="reference")
    caches = tape.caches

    grad_norm = np.empty((L, T))
    d_above = d_output.transpose(1, 0, 2) if layer.batch_first else d_output  # (T, B, H)
    for k in reversed(range(L)):
        W_ih = layer.params[f"weight_ih_l{k}"]
        d_below = np.empty(caches[k].args.x.shape, layer.dtype)   # dL/d(layer k's input)
        d_states = (np.zeros((B, H), layer.dtype),) * n_states
        for t in reversed(range(T)):
            d_states = (d_states[0] + d_above[t], *d_states[1:])
            grad_norm[k, t] = _mean_row_norm(d_states[0])
            d_pre, d_states = caches[k].step_back(t, d_states)
            if k > 0:   # the bottom layer's input gradient reaches no state
                d_below[t] = d_pre @ W_ih
        d_above = d_below

    jacobian_norm = None
    if jacobian:
        jacobian_norm = np.empty((L, T))
        # J[j, b] = row j of dh_{T-1}/dh_t for batch row b: the identity at t = T-1,
        # pushed back a step at a time with H as an extra batch dimension
        seed = np.broadcast_to(np.eye(H, dtype=layer.dtype)[:, None, :], (H, B, H))
        for k in range(L):
            d_states = (seed.copy(), *(np.zeros((H, B, H), layer.dtype),) * (n_states - 1))
            jacobian_norm[k, T - 1] = _mean_row_norm(d_states[0])
            for t in range(T - 1, 0, -1):
                _, d_states = caches[k].step_back(t, d_states)
                jacobian_norm[k, t - 1] = _mean_row_norm(d_states[0])
    return GradientFlow(grad_norm, jacobian_norm)


def plot_gradient_flow(flow, path=None, ax=None):
    """Plot a GradientFlow on a log scale, one line per layer, against the time step.

    Needs matplotlib (``pip install "fastbptt[plot]"``).

    Parameters
    ----------
    flow : GradientFlow
        What :func:`gradient_flow` returned.
    path : str or path-like, optional
        Save the figure there as a PNG.
    ax : matplotlib Axes, a pair of Axes, or None
        None: a new figure with a panel for ||dL/dh_t|| and one for ||dh_T/dh_t||_F (when
        measured); one Axes: both on it (solid and dashed); a pair: one quantity on each.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('plot_gradient_flow needs matplotlib: pip install "fastbptt[plot]"'
                          ' (or pip install matplotlib)') from exc
    if not isinstance(flow, GradientFlow):
        raise TypeError(f"flow must be a GradientFlow from gradient_flow(), got "
                        f"{type(flow).__name__}")
    series = [("||dL/dh_t||", flow.grad_norm, "-")]
    if flow.jacobian_norm is not None:
        series.append(("||dh_T/dh_t||_F", flow.jacobian_norm, "--"))
    if ax is None:
        fig = Figure(figsize=(4.5 * len(series), 3.4), layout="constrained")
        axes = list(np.atleast_1d(fig.subplots(1, len(series))))
    elif isinstance(ax, (list, tuple)):
        if len(ax) != len(series):
            raise ValueError(f"ax must hold {len(series)} Axes for this flow, got {len(ax)}")
        axes, fig = list(ax), ax[0].figure
    else:
        axes, fig = [ax] * len(series), ax.figure
    shared = len(set(map(id, axes))) == 1
    for a, (title, values, style) in zip(axes, series):
        steps = np.arange(values.shape[1])
        for k, row in enumerate(values):
            label = f"layer {k}" + (f" {title}" if shared else "")
            a.plot(steps, row, style, label=label)
        a.set_yscale("log")
        a.set_xlabel("time step t")
        a.set_title("mean over the batch" if shared else title)
        a.legend(fontsize="small")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
