"""dropout=p on RNN, LSTM, GRU: torch's semantics (layer k's output times a mask
Bernoulli(1 - p) / (1 - p) on its way to layer k + 1, for every layer but the last; none
in evaluation mode), the masks from the layer's Generator and reused in backward, the
two backends agreeing for one seed, finite differences with the masks held fixed, and
torch as the oracle in both modes (skipped without torch)."""
import warnings

import numpy as np
import pytest

from _helpers import central_differences
from fastbptt import GRU, LSTM, RNN
from fastbptt import reference as ref

CLASSES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
cell_param = pytest.mark.parametrize("cell", list(CLASSES))


def _make(cell, I=3, H=4, num_layers=3, dropout=0.4, **kw):
    kw.setdefault("dtype", np.float64)
    kw.setdefault("seed", 0)
    return CLASSES[cell](I, H, num_layers=num_layers, dropout=dropout, **kw)


def _backward(layer, cell, d_out, d_fin):
    if cell == "lstm":
        dx, grads = layer.backward(d_out, *d_fin)
        return dx, grads, (layer.d_h0, layer.d_c0)
    dx, grads = layer.backward(d_out, d_fin[0])
    return dx, grads, (layer.d_h0,)


def _finals(cell, fin):
    return fin if cell == "lstm" else (fin,)


def _problem(layer, cell, T=5, B=3, seed=1):
    rng = np.random.default_rng(seed)
    D, H = layer.num_directions, layer.hidden_size
    x = rng.standard_normal((T, B, layer.input_size))
    d_out = rng.standard_normal((T, B, D * H))
    fin_shape = (layer.num_layers * D, B, H)
    d_fin = [rng.standard_normal(fin_shape) for _ in range(2 if cell == "lstm" else 1)]
    return x, d_out, d_fin


# ------------------------------------------------------------------ arguments and modes

@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", True, None, np.nan])
def test_dropout_outside_zero_one_is_refused(p):
    with pytest.raises(ValueError, match="dropout"):
        LSTM(3, 4, num_layers=2, dropout=p)


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        GRU(3, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU(3, 4, dropout=0.0)          # p = 0: nothing to warn about
        GRU(3, 4, num_layers=2, dropout=0.5)


def test_train_eval_and_training():
    layer = RNN(3, 4, num_layers=2, dropout=0.5)
    assert layer.training is True      # torch modules start in training mode
    assert layer.eval() is layer and layer.training is False
    assert layer.train() is layer and layer.training is True
    assert layer.train(False).training is False
    with pytest.raises(TypeError, match="mode"):
        layer.train(1)
    assert "dropout=0.5" in repr(layer)


# ------------------------------------------------------------------ train-mode semantics

@cell_param
def test_masks_scale_by_one_over_keep_and_skip_the_last_layer(cell):
    p = 0.25
    layer = _make(cell, I=3, H=16, num_layers=3, dropout=p, backend="reference")
    x = np.random.default_rng(2).standard_normal((40, 8, 3))
    out, fin = layer.forward(x)
    masks = layer.tape.masks
    assert len(masks) == 2                       # L - 1: none after the last layer
    for m in masks:
        assert m.shape == (40, 8, 16) and m.dtype == np.float64
        assert set(np.unique(m)) == {0.0, 1 / (1 - p)}
        assert abs((m == 0).mean() - p) < 0.03   # 10,240 draws
    # rebuild the stack by hand from the functional reference and the tape's masks
    forward = getattr(ref, f"{cell}_forward")
    n = 2 if cell == "lstm" else 1
    inp = x
    for k in range(3):
        w = [layer.params[f"{name}_l{k}"] for name in
             ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h, cache = forward(inp, *([None] * n), *w)
        for value, final in zip(cache.final_states(), _finals(cell, fin)):
            np.testing.assert_array_equal(final[k], value)   # h_n is never dropped
        inp = h * masks[k] if k < 2 else h
    np.testing.assert_array_equal(out, inp)


@cell_param
def test_no_dropout_in_eval_mode_or_at_p_zero(cell):
    x, d_out, d_fin = _problem(_make(cell), cell)
    plain = _make(cell, dropout=0.0)
    expected, _ = plain.forward(x)
    dropped = _make(cell, dropout=0.6).eval()
    out, _ = dropped.forward(x)
    assert dropped.tape.masks is None
    np.testing.assert_array_equal(out, expected)
    zero = _make(cell, dropout=0.0)
    np.testing.assert_array_equal(zero.forward(x)[0], expected)
    assert zero.tape.masks is None


@cell_param
def test_masks_are_seeded_and_fresh_per_forward(cell):
    x, _, _ = _problem(_make(cell), cell)
    a, b = _make(cell, seed=7), _make(cell, seed=7)
    first = a.forward(x)[0]
    np.testing.assert_array_equal(first, b.forward(x)[0])   # the same seed, the same masks
    assert not np.array_equal(first, a.forward(x)[0])       # the next forward draws anew


@cell_param
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_compiled_and_reference_agree_for_one_seed(cell, bidirectional, dtype):
    kw = dict(bidirectional=bidirectional, dtype=dtype, seed=3)
    comp = _make(cell, backend="compiled", **kw)
    refl = _make(cell, backend="reference", **kw)
    x, d_out, d_fin = _problem(comp, cell)
    x, d_out, d_fin = x.astype(dtype), d_out.astype(dtype), [d.astype(dtype) for d in d_fin]
    lengths = np.array([5, 2, 4])
    out_c, fin_c = comp.forward(x, lengths=lengths)
    out_r, fin_r = refl.forward(x, lengths=lengths)
    assert out_c.dtype == dtype
    for m_c, m_r in zip(comp.tape.masks, refl.tape.masks):
        np.testing.assert_array_equal(m_c, m_r)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out_c, out_r, rtol=rtol, atol=rtol)
    for a, b in zip(_finals(cell, fin_c), _finals(cell, fin_r)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    dx_c, g_c, d0_c = _backward(comp, cell, d_out, d_fin)
    dx_r, g_r, d0_r = _backward(refl, cell, d_out, d_fin)
    np.testing.assert_allclose(dx_c, dx_r, rtol=rtol * 10, atol=rtol * 10)
    for key in g_r:
        assert g_c[key].dtype == dtype
        np.testing.assert_allclose(g_c[key], g_r[key], rtol=rtol * 10, atol=rtol * 10,
                                   err_msg=key)
    for a, b in zip(d0_c, d0_r):
        np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=rtol * 10)


@cell_param
def test_gradients_match_finite_differences_with_the_masks_fixed(cell):
    """Each forward draws its masks from layer.generator; resetting it to one seed before
    every forward holds the masks fixed, so the loss is a smooth function to differentiate."""
    layer = _make(cell, I=2, H=3, num_layers=2, dropout=0.5, bidirectional=True,
                  backend="compiled")
    x, d_out, d_fin = _problem(layer, cell, T=4, B=2)

    def loss():
        layer.generator = np.random.default_rng(99)
        out, fin = layer.forward(x)
        total = (out * d_out).sum()
        for f, d in zip(_finals(cell, fin), d_fin):
            total += (f * d).sum()
        return total

    loss()
    assert np.any(layer.tape.masks[0] == 0)
    dx, grads, _ = _backward(layer, cell, d_out, d_fin)
    for key in ("weight_ih_l0", "weight_hh_l0_reverse", "bias_ih_l1", "weight_ih_l1"):
        np.testing.assert_allclose(grads[key], central_differences(loss, layer.params[key]),
                                   rtol=1e-6, atol=1e-8, err_msg=key)
    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ torch as the oracle

def _torch_class(torch, cell):
    return {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]


@cell_param
@pytest.mark.parametrize("bidirectional", [False, True])
def test_eval_mode_matches_torch_with_dropout(cell, bidirectional):
    torch = pytest.importorskip("torch")
    layer = _make(cell, num_layers=2, dropout=0.5, bidirectional=bidirectional, seed=4)
    module = _torch_class(torch, cell)(3, 4, num_layers=2, dropout=0.5,
                                       bidirectional=bidirectional, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    module.eval()
    layer.eval()
    x, d_out, d_fin = _problem(layer, cell)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, t_fin = module(tx)
    t_fin = _finals(cell, t_fin)
    loss = (t_out * torch.from_numpy(d_out)).sum()
    for f, d in zip(t_fin, d_fin):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()
    out, fin = layer.forward(x)
    dx, grads, _ = _backward(layer, cell, d_out, d_fin)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-9, atol=1e-12)
    for a, b in zip(_finals(cell, fin), t_fin):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for key, param in module.named_parameters():
        np.testing.assert_allclose(grads[key], param.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=key)


@cell_param
@pytest.mark.parametrize("bidirectional", [False, True])
def test_train_mode_matches_a_torch_stack_with_the_same_masks(cell, bidirectional):
    """torch draws its own masks, so the oracle is torch's layers run one at a time with
    this layer's masks (from its tape) applied between them: the same outputs and
    gradients to rounding."""
    torch = pytest.importorskip("torch")
    L = 3
    layer = _make(cell, num_layers=L, dropout=0.3, bidirectional=bidirectional, seed=5)
    x, d_out, d_fin = _problem(layer, cell)
    out, fin = layer.forward(x)
    masks = layer.tape.masks
    dx, grads, _ = _backward(layer, cell, d_out, d_fin)

    D = layer.num_directions
    sd = layer.state_dict()
    tx = torch.from_numpy(x.copy()).requires_grad_()
    inp, t_fins, modules = tx, [], []
    for k in range(L):
        module = _torch_class(torch, cell)(inp.shape[-1], 4, bidirectional=bidirectional,
                                           dtype=torch.float64)
        module.load_state_dict({key.replace(f"_l{k}", "_l0"): torch.from_numpy(v)
                                for key, v in sd.items() if f"_l{k}" in key})
        h, f = module(inp)
        t_fins.append(_finals(cell, f))
        modules.append(module)
        inp = h * torch.from_numpy(masks[k]) if k < L - 1 else h
    t_out = inp
    t_fin = [torch.cat([f[s] for f in t_fins]) for s in range(len(t_fins[0]))]
    loss = (t_out * torch.from_numpy(d_out)).sum()
    for f, d in zip(t_fin, d_fin):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()
    assert D * L == t_fin[0].shape[0]
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-9, atol=1e-12)
    for a, b in zip(_finals(cell, fin), t_fin):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for k, module in enumerate(modules):
        for key, param in module.named_parameters():
            ours = key.replace("_l0", f"_l{k}")
            np.testing.assert_allclose(grads[ours], param.grad.numpy(), rtol=1e-9,
                                       atol=1e-12, err_msg=ours)


def test_torch_lstm_650_two_layers_dropout_state_dict_loads_and_matches_in_eval():
    """The issue's case: a torch nn.LSTM(650, 650, num_layers=2, dropout=0.5) (Zaremba et
    al.'s medium PTB model) loads and gives torch's outputs and gradients in evaluation
    mode (a short sequence keeps the test quick)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(650, 650, num_layers=2, dropout=0.5, dtype=torch.float64).eval()
    layer = LSTM(650, 650, num_layers=2, dropout=0.5, dtype=np.float64).eval()
    layer.load_state_dict(module.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 650))
    d_out = rng.standard_normal((3, 2, 650))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, _ = module(tx)
    (t_out * torch.from_numpy(d_out)).sum().backward()
    out, _ = layer.forward(x)
    dx, grads = layer.backward(d_out)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for key, param in module.named_parameters():
        np.testing.assert_allclose(grads[key], param.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=key)
