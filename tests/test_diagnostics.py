"""Gradient-flow diagnostics (fastbptt.training.diagnostics): grad_norm against the compiled
layers' backward (every dL/dh_t rebuilt exactly from single-layer suffix runs),
jacobian_norm against finite differences, a vanishing example, the plot, bad input."""
import sys

import numpy as np
import pytest

import fastbptt.reference
from fastbptt import RNN, GradientFlow, gradient_flow, plot_gradient_flow
from fastbptt.cells.spec import CELLS, SPECS
from fastbptt.nn import LAYERS as CLASSES

cell_param = pytest.mark.parametrize("cell", CELLS)


def _has_c(cell):
    """Whether the cell carries a cell state c beside h (a layer then takes and returns
    the tuple (h, c) of states)."""
    return "c" in SPECS[cell].states

T, B, I, H = 6, 3, 2, 4


def _layer(cell, num_layers=2, batch_first=False, seed=0):
    return CLASSES[cell](I, H, num_layers=num_layers, batch_first=batch_first,
                         dtype=np.float64, seed=seed)


def _problem(cell, layer, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    d_out = rng.standard_normal((T, B, H))
    shape = (layer.num_layers, B, H)
    hx = tuple(rng.standard_normal(shape) * 0.5 for _ in SPECS[cell].states)
    return x, d_out, hx if len(hx) > 1 else hx[0]


def _single_layer(layer, cell, k):
    """A one-layer copy of layer k of a stacked layer (compiled backend)."""
    I_k = layer.input_size if k == 0 else layer.hidden_size
    single = CLASSES[cell](I_k, H, dtype=np.float64)
    single.load_state_dict({key.replace(f"_l{k}", "_l0"): value
                            for key, value in layer.params.items() if f"_l{k}" in key})
    return single


def _init(cell, hx, k):
    if len(SPECS[cell].states) > 1:
        return tuple(h[k:k + 1] for h in hx)
    return hx[k:k + 1]


def _expected_grad_norms(layer, cell, x, d_out, hx):
    """grad_norm rebuilt from the compiled layers: for layer k with upstream gradient d
    (d_output for the top layer, the input gradient of layer k+1 below it),
    dL/dh_t = d[t] + dL/dh0 of a run over steps t+1.. started from the state at t."""
    singles = [_single_layer(layer, cell, k) for k in range(layer.num_layers)]
    inputs, inp = [], x
    for k, single in enumerate(singles):
        inputs.append(inp)
        inp, _ = single.forward(inp, _init(cell, hx, k))
    expected = np.empty((layer.num_layers, T))
    d = d_out
    for k in reversed(range(layer.num_layers)):
        single, inp = singles[k], inputs[k]
        for t in range(T):
            g = d[t].copy()
            if t < T - 1:
                _, state = single.forward(inp[:t + 1], _init(cell, hx, k))
                single.forward(inp[t + 1:], state)
                single.backward(d[t + 1:])
                g += single.d_h0[0]
            expected[k, t] = np.mean(np.linalg.norm(g, axis=1))
        single.forward(inp, _init(cell, hx, k))
        d, _ = single.backward(d)   # dL/d(input of layer k) = upstream of layer k-1
    return expected


@cell_param
def test_grad_norm_matches_the_compiled_backward(cell):
    layer = _layer(cell)
    x, d_out, hx = _problem(cell, layer)
    flow = gradient_flow(layer, x, d_out, hx)
    assert isinstance(flow, GradientFlow)
    assert flow.grad_norm.shape == flow.jacobian_norm.shape == (2, T)
    expected = _expected_grad_norms(layer, cell, x, d_out, hx)
    np.testing.assert_allclose(flow.grad_norm, expected, rtol=1e-10)


def _reference_run(cell, params, k, inp, h0, c0):
    """Layer k over inp (T', B, I_k) from (h0, c0) by the reference twin: the states."""
    w = (params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"], params[f"bias_ih_l{k}"],
         params[f"bias_hh_l{k}"])
    spec = SPECS[cell]
    forward = getattr(fastbptt.reference, spec.forward_name)
    return forward(inp, *(h0, c0)[:len(spec.states)], *w)


@cell_param
def test_jacobian_norm_matches_finite_differences(cell):
    layer = _layer(cell)
    x, d_out, hx = _problem(cell, layer)
    flow = gradient_flow(layer, x, d_out, hx)
    h0s, c0s = (hx if _has_c(cell) else (hx, np.zeros_like(hx)))
    inp, eps = x, 1e-6
    for k in range(layer.num_layers):
        h_all, cache = _reference_run(cell, layer.params, k, inp, h0s[k], c0s[k])
        c_all = cache.c if _has_c(cell) else None
        for t in range(T - 1):
            J = np.empty((B, H, H))          # J[b, :, j] = d h_{T-1}[b] / d h_t[b, j]
            for j in range(H):
                runs = []
                for sign in (1, -1):
                    h_t = h_all[t].copy()
                    h_t[:, j] += sign * eps
                    c_t = c_all[t] if _has_c(cell) else None   # c_t held fixed
                    out, _ = _reference_run(cell, layer.params, k, inp[t + 1:], h_t, c_t)
                    runs.append(out[-1])
                J[:, :, j] = (runs[0] - runs[1]) / (2 * eps)
            expected = np.mean(np.linalg.norm(J, axis=(1, 2)))
            assert flow.jacobian_norm[k, t] == pytest.approx(expected, rel=1e-6), (k, t)
        assert flow.jacobian_norm[k, T - 1] == pytest.approx(np.sqrt(H), rel=1e-15)
        inp = h_all


def test_vanishing_gradient_in_a_tanh_rnn_with_a_small_recurrent_weight():
    layer = RNN(I, H, dtype=np.float64, seed=0)
    layer.params["weight_hh_l0"] *= 0.3
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, B, I))
    d_out = np.zeros((20, B, H))
    d_out[-1] = rng.standard_normal((B, H))      # the loss sits at the last step only
    flow = gradient_flow(layer, x, d_out)
    # going back in time (t decreasing) both norms fall at every step, by orders of
    # magnitude over the sequence
    assert np.all(np.diff(flow.grad_norm[0]) > 0)
    assert np.all(np.diff(flow.jacobian_norm[0]) > 0)
    assert flow.jacobian_norm[0, 0] < 1e-6 * flow.jacobian_norm[0, -1]


@cell_param
def test_batch_first_and_float32_agree_with_time_major_float64(cell):
    layer = _layer(cell)
    x, d_out, hx = _problem(cell, layer)
    flow = gradient_flow(layer, x, d_out, hx)
    bf = _layer(cell, batch_first=True)
    flow_bf = gradient_flow(bf, x.transpose(1, 0, 2), d_out.transpose(1, 0, 2), hx)
    np.testing.assert_allclose(flow_bf.grad_norm, flow.grad_norm, rtol=1e-12)
    np.testing.assert_allclose(flow_bf.jacobian_norm, flow.jacobian_norm, rtol=1e-12)

    f32 = CLASSES[cell](I, H, num_layers=2, dtype=np.float32, seed=0)
    hx32 = tuple(h.astype(np.float32) for h in hx) if _has_c(cell) \
        else hx.astype(np.float32)
    flow32 = gradient_flow(f32, x.astype(np.float32), d_out.astype(np.float32), hx32,
                           jacobian=False)
    assert flow32.jacobian_norm is None
    np.testing.assert_allclose(flow32.grad_norm, flow.grad_norm, rtol=1e-4)


# ------------------------------------------------------------------ the plot

@pytest.mark.parametrize("jacobian", [True, False])
def test_plot_writes_a_png(tmp_path, jacobian):
    pytest.importorskip("matplotlib")
    layer = _layer("lstm")
    x, d_out, hx = _problem("lstm", layer)
    flow = gradient_flow(layer, x, d_out, hx, jacobian=jacobian)
    path = tmp_path / "flow.png"
    fig = plot_gradient_flow(flow, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == (2 if jacobian else 1)
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert len(fig.axes[0].lines) == layer.num_layers


def test_plot_on_given_axes():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    layer = _layer("gru")
    x, d_out, hx = _problem("gru", layer)
    flow = gradient_flow(layer, x, d_out, hx)
    fig = Figure()
    ax = fig.subplots()
    assert plot_gradient_flow(flow, ax=ax) is fig
    assert len(ax.lines) == 2 * layer.num_layers      # both quantities on one Axes
    fig2 = Figure()
    pair = list(fig2.subplots(1, 2))
    plot_gradient_flow(flow, ax=pair)
    assert [len(a.lines) for a in pair] == [2, 2]
    with pytest.raises(ValueError, match="ax must hold 2 Axes"):
        plot_gradient_flow(flow, ax=pair[:1])


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    flow = GradientFlow(np.ones((1, 3)), None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "fastbptt\[plot\]"'):
        plot_gradient_flow(flow)


# ------------------------------------------------------------------ bad input

def test_bad_input():
    layer = _layer("lstm")
    x, d_out, hx = _problem("lstm", layer)
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_flow(RNN(I, H, bidirectional=True), x, d_out)
    with pytest.raises(TypeError, match="layer must be a fastbptt RNN, LSTM or GRU"):
        gradient_flow("lstm", x, d_out)
    with pytest.raises(ValueError, match=r"d_output must have the layer output's shape"):
        gradient_flow(layer, x, d_out[:-1])
    with pytest.raises(TypeError, match="mixed dtypes: d_output is float32"):
        gradient_flow(layer, x, d_out.astype(np.float32))
    with pytest.raises(ValueError, match="x must have 2 features"):
        gradient_flow(layer, x[:, :, :1], d_out)
    with pytest.raises(ValueError, match="x has no time steps"):
        gradient_flow(layer, x[:0], d_out[:0])
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
        gradient_flow(layer, x, d_out, hx[0])
    with pytest.raises(ValueError, match="h0 must have shape"):
        gradient_flow(layer, x, d_out, (hx[0][:1], hx[1]))
    with pytest.raises(TypeError, match="jacobian must be a bool"):
        gradient_flow(layer, x, d_out, jacobian=1)
    pytest.importorskip("matplotlib")
    with pytest.raises(TypeError, match="flow must be a GradientFlow"):
        plot_gradient_flow(np.ones((1, 3)))


# ------------------------------------------------------------------ per-step reference

@cell_param
def test_reference_backward_steps_broadcast_over_leading_dimensions(cell):
    """The per-step functions the diagnostics push an identity through: K vectors at once
    (K, B, H) give the same as K separate (B, H) calls, with and without lengths."""
    spec = SPECS[cell]
    module = getattr(fastbptt.reference, spec.name)   # fastbptt.reference.rnn, ...
    step = getattr(module, f"{spec.name}_backward_step")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, I))
    params = _layer(cell, num_layers=1).params
    h0, c0 = rng.standard_normal((2, B, H))
    _, cache = _reference_run(cell, params, 0, x, h0, c0)
    G = rng.standard_normal((5, B, H))
    C = rng.standard_normal((5, B, H))
    d_states = (G, C)[:len(spec.states)]   # dL/dh_t (and dL/dc_t), 5 vectors each
    for keep in (None, np.array([[True], [False], [True]])):
        for t in (0, T - 1):
            together = step(*d_states, cache, t, keep)
            apart = [step(*(d[j] for d in d_states), cache, t, keep) for j in range(5)]
            for i, part in enumerate(together):
                np.testing.assert_allclose(part, np.stack([a[i] for a in apart]),
                                           rtol=1e-14, atol=1e-14)
            if keep is not None:   # the row past its length passes g through untouched
                # (the last state's gradient is the step's last result)
                np.testing.assert_array_equal(together[-1][:, 1], d_states[-1][:, 1])
