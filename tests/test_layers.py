"""Layer classes RNN, LSTM, GRU: parameters keyed like torch, stacked and bidirectional
layers, lengths, backends, state dicts; torch.nn with the same weights as the oracle
(skipped without torch); finite differences of the parameter gradients."""
import numpy as np
import pytest

from fastbptt import GRU, LSTM, RNN
from fastbptt.cells.spec import CELLS, SPECS
from fastbptt.nn import LAYERS as CLASSES

cell_param = pytest.mark.parametrize("cell", CELLS)


def _n_states(cell):
    """How many states the cell carries: a layer takes and returns a tuple of them when
    there are several (h, c), a single array otherwise."""
    return len(SPECS[cell].states)


def _make(cell, I=3, H=4, **kw):
    kw.setdefault("dtype", np.float64)
    kw.setdefault("seed", 0)
    return CLASSES[cell](I, H, **kw)


def _states(cell, layer, B, rng):
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    states = tuple(rng.standard_normal(shape).astype(layer.dtype)
                   for _ in range(_n_states(cell)))
    return states if len(states) > 1 else states[0]


def _run(layer, cell, x, states, d_out, d_fin, lengths=None):
    """(output, finals, dx, grads, d_initial) of one forward+backward."""
    out, fin = layer.forward(x, states, lengths=lengths)
    dx, grads = layer.backward(d_out, *d_fin)
    d_initial = tuple(getattr(layer, f"d_{name}0") for name in SPECS[cell].states)
    return out, fin if _n_states(cell) > 1 else (fin,), dx, grads, d_initial


def _problem(cell, layer, T, B, seed=1):
    rng = np.random.default_rng(seed)
    D, H = layer.num_directions, layer.hidden_size
    x_shape = (B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)
    out_shape = (B, T, D * H) if layer.batch_first else (T, B, D * H)
    fin_shape = (layer.num_layers * D, B, H)
    x = rng.standard_normal(x_shape).astype(layer.dtype)
    states = _states(cell, layer, B, rng)
    d_out = rng.standard_normal(out_shape).astype(layer.dtype)
    d_fin = [rng.standard_normal(fin_shape).astype(layer.dtype)
             for _ in range(_n_states(cell))]
    return x, states, d_out, d_fin


# ------------------------------------------------------------------ parameters

@cell_param
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_keys_shapes_and_init(cell, bidirectional, bias):
    G = SPECS[cell].gates
    layer = _make(cell, 3, 5, num_layers=2, bidirectional=bidirectional, bias=bias,
                  dtype=np.float32)
    D = 2 if bidirectional else 1
    expected = {}
    for k in range(2):
        for sfx in ("", "_reverse")[:D]:
            expected[f"weight_ih_l{k}{sfx}"] = (G * 5, 3 if k == 0 else D * 5)
            expected[f"weight_hh_l{k}{sfx}"] = (G * 5, 5)
            if bias:
                expected[f"bias_ih_l{k}{sfx}"] = (G * 5,)
                expected[f"bias_hh_l{k}{sfx}"] = (G * 5,)
    assert list(layer.params) == list(expected)   # torch's order too
    for key, shape in expected.items():
        value = layer.params[key]
        assert value.shape == shape and value.dtype == np.float32
        assert np.all(np.abs(value) <= 1 / np.sqrt(5))
    # a seed reproduces, a Generator is accepted
    again = _make(cell, 3, 5, num_layers=2, bidirectional=bidirectional, bias=bias,
                  dtype=np.float32)
    for key in expected:
        np.testing.assert_array_equal(layer.params[key], again.params[key])
    _make(cell, seed=np.random.default_rng(3))


@cell_param
def test_state_dict_round_trip_and_errors(cell):
    layer = _make(cell, num_layers=2, bidirectional=True)
    sd = layer.state_dict()
    sd["weight_hh_l1_reverse"][:] = 0   # a copy: the layer is untouched
    assert np.any(layer.params["weight_hh_l1_reverse"])
    other = _make(cell, num_layers=2, bidirectional=True, seed=5)
    other.load_state_dict(layer.state_dict())
    for key, value in layer.params.items():
        np.testing.assert_array_equal(other.params[key], value)
    missing = layer.state_dict()
    del missing["bias_hh_l0"]
    with pytest.raises(KeyError, match="missing.*bias_hh_l0"):
        other.load_state_dict(missing)
    extra = layer.state_dict()
    extra["weight_ih_l2"] = extra["weight_ih_l1"]
    with pytest.raises(KeyError, match="unexpected.*weight_ih_l2"):
        other.load_state_dict(extra)
    bad = layer.state_dict()
    bad["weight_hh_l0"] = bad["weight_hh_l0"][:, :-1]
    with pytest.raises(ValueError, match="weight_hh_l0.*shape"):
        other.load_state_dict(bad)
    bad = layer.state_dict()
    bad["weight_hh_l0"] = bad["weight_hh_l0"].astype(int)
    with pytest.raises(TypeError, match="weight_hh_l0"):
        other.load_state_dict(bad)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        RNN(3, 0)
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="bidirectional"):
        GRU(3, 4, bidirectional=1)
    with pytest.raises(TypeError, match="dtype"):
        GRU(3, 4, dtype=np.int64)
    with pytest.raises(ValueError, match="backend"):
        GRU(3, 4, backend="fast")


@cell_param
def test_forward_rejects_bad_input(cell):
    layer = _make(cell, num_layers=2)
    x = np.zeros((5, 2, 3))
    with pytest.raises(ValueError, match="input_size"):
        layer.forward(np.zeros((5, 2, 4)))
    with pytest.raises(TypeError, match="x"):
        layer.forward(x.astype(np.float32))
    bad_h0 = np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match="h0"):
        layer.forward(x, (bad_h0, None) if _n_states(cell) > 1 else bad_h0)
    with pytest.raises(ValueError, match="lengths"):
        layer.forward(x, lengths=[5, 6])
    with pytest.raises(RuntimeError, match="forward"):
        _make(cell).backward(np.zeros((5, 2, 4)))
    layer.forward(x)
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((5, 2, 5)))


# ------------------------------------------------------------------ backends agree

@cell_param
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_compiled_matches_reference_layers(cell, bidirectional, batch_first, with_lengths):
    T, B = 5, 3
    layer = _make(cell, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    x, states, d_out, d_fin = _problem(cell, layer, T, B)
    lengths = np.array([5, 2, 3]) if with_lengths else None
    results = {}
    for backend in ("compiled", "reference"):
        layer.backend = backend
        results[backend] = _run(layer, cell, x, states, d_out, d_fin, lengths)
    got, ref = results["compiled"], results["reference"]
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-10, atol=1e-12)
    assert list(got[3]) == list(layer.params)
    for key in got[3]:
        np.testing.assert_allclose(got[3][key], ref[3][key], rtol=1e-10, atol=1e-12,
                                   err_msg=key)
    for a, b in zip(got[4], ref[4]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@cell_param
def test_float32_layer_gives_float32(cell):
    layer = _make(cell, dtype=np.float32, bidirectional=True)
    x, states, d_out, d_fin = _problem(cell, layer, 4, 2)
    out, fin, dx, grads, d_init = _run(layer, cell, x, states, d_out, d_fin)
    for a in (out, *fin, dx, *grads.values(), *d_init):
        assert a.dtype == np.float32


# ------------------------------------------------------------------ finite differences

@cell_param
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_gradients_match_finite_differences(cell, bidirectional):
    T, B = 3, 2
    layer = _make(cell, 2, 3, num_layers=2, bidirectional=bidirectional, seed=4)
    x, states, d_out, d_fin = _problem(cell, layer, T, B, seed=6)
    lengths = np.array([3, 2])

    def loss():
        out, fin = layer.forward(x, states, lengths=lengths)
        fin = fin if _n_states(cell) > 1 else (fin,)
        return float(np.sum(out * d_out) + sum(np.sum(f * d) for f, d in zip(fin, d_fin)))

    _, _, dx, grads, _ = _run(layer, cell, x, states, d_out, d_fin, lengths)
    for key in ("weight_ih_l0", "weight_hh_l1", "bias_hh_l0") + \
            (("weight_hh_l0_reverse",) if bidirectional else ()):
        param = layer.params[key]
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + 1e-6
            up = loss()
            param[idx] = old - 1e-6
            down = loss()
            param[idx] = old
            numeric[idx] = (up - down) / 2e-6
        err = np.max(np.abs(grads[key] - numeric)) / np.max(np.abs(numeric))
        assert err < 1e-6, f"{key}: relative error {err:.1e}"
    numeric = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + 1e-6
        up = loss()
        x[idx] = old - 1e-6
        down = loss()
        x[idx] = old
        numeric[idx] = (up - down) / 2e-6
    assert np.max(np.abs(dx - numeric)) / np.max(np.abs(numeric)) < 1e-6


# ------------------------------------------------------------------ torch as the oracle

def _torch_module(torch, cell, layer):
    cls = getattr(torch.nn, SPECS[cell].torch_name)
    kw = {name: getattr(layer, name) for name in SPECS[cell].options}   # nonlinearity
    module = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                 bias=layer.bias, batch_first=layer.batch_first,
                 bidirectional=layer.bidirectional,
                 dtype=torch.float64 if layer.dtype == np.float64 else torch.float32, **kw)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return module


@cell_param
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_matches_torch(cell, num_layers, bidirectional, batch_first, with_lengths, dtype):
    torch = pytest.importorskip("torch")
    T, B = 6, 4
    layer = _make(cell, 3, 5, num_layers=num_layers, bidirectional=bidirectional,
                  batch_first=batch_first, dtype=dtype, seed=11)
    module = _torch_module(torch, cell, layer)
    x, states, d_out, d_fin = _problem(cell, layer, T, B, seed=12)
    lengths = np.array([6, 2, 5, 1]) if with_lengths else None

    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_states = tuple(torch.from_numpy(s.copy()).requires_grad_()
                     for s in (states if _n_states(cell) > 1 else (states,)))
    inp = tx
    if with_lengths:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            tx, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
    t_out, t_fin = module(inp, t_states if _n_states(cell) > 1 else t_states[0])
    if with_lengths:
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(t_out, batch_first=batch_first,
                                                          total_length=T)
    t_fin = t_fin if _n_states(cell) > 1 else (t_fin,)
    loss = (t_out * torch.from_numpy(d_out)).sum()
    for f, d in zip(t_fin, d_fin):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()

    out, fin, dx, grads, d_init = _run(layer, cell, x, states, d_out, d_fin, lengths)
    rtol, atol = (1e-9, 1e-9) if dtype == np.float64 else (1e-4, 1e-5)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=rtol, atol=atol)
    for a, b in zip(fin, t_fin):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=atol)
    for a, b in zip(d_init, t_states):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=rtol, atol=atol)
    for key, param in module.named_parameters():
        np.testing.assert_allclose(grads[key], param.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=key)
