"""The one-step cell classes RNNCell, LSTMCell, GRUCell: torch's parameter names and
shapes, a caller's loop over steps (gradients accumulated by the caller) against
torch.nn.*Cell with the same weights (skipped without torch), compiled against reference,
finite differences in float64, unbatched inputs, dtypes and bad input."""
import numpy as np
import pytest

from _helpers import central_differences
from fastbptt import GRUCell, LSTMCell, RNNCell

CLASSES = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
cell_param = pytest.mark.parametrize("cell", list(CLASSES))


def _make(cell, I=3, H=4, **kw):
    kw.setdefault("dtype", np.float64)
    kw.setdefault("seed", 0)
    return CLASSES[cell](I, H, **kw)


def _parts(cell, state):
    return state if cell == "lstm" else (state,)


def _whole(cell, parts):
    return tuple(parts) if cell == "lstm" else parts[0]


def _loop(c, cell, xs, hx, d_hs):
    """Run the cell over xs (T, ...) from hx with dL/dh_t = d_hs[t], then back through the
    steps: (the states, dxs, dL/dhx, grads summed over the steps)."""
    caches, states, state = [], [], hx
    for x_t in xs:
        state, cache = c.forward(x_t, state)
        caches.append(cache)
        states.append(state)
    n = len(_parts(cell, states[0]))
    carry = [np.zeros_like(s) for s in _parts(cell, states[0])]
    total, dxs = {}, [None] * len(xs)
    for t in reversed(range(len(xs))):
        d_h = carry[0] + d_hs[t]
        dx, d_prev, grads = c.backward(d_h, caches[t], *carry[1:n])
        dxs[t] = dx
        carry = list(_parts(cell, d_prev))
        for key, value in grads.items():
            total[key] = total.get(key, 0) + value
    return states, np.array(dxs), _whole(cell, carry), total


def _problem(cell, c, T, B, seed=1):
    rng = np.random.default_rng(seed)
    lead = () if B is None else (B,)
    xs = rng.standard_normal((T, *lead, c.input_size)).astype(c.dtype)
    hx = [rng.standard_normal((*lead, c.hidden_size)).astype(c.dtype)
          for _ in range(2 if cell == "lstm" else 1)]
    d_hs = rng.standard_normal((T, *lead, c.hidden_size)).astype(c.dtype)
    return xs, _whole(cell, hx), d_hs


# ------------------------------------------------------------------ parameters

@cell_param
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_shapes_and_init(cell, bias):
    c = _make(cell, 3, 5, bias=bias, dtype=np.float32)
    G = GATES[cell]
    expected = {"weight_ih": (G * 5, 3), "weight_hh": (G * 5, 5)}
    if bias:
        expected.update(bias_ih=(G * 5,), bias_hh=(G * 5,))
    assert {k: v.shape for k, v in c.params.items()} == expected
    for value in c.params.values():
        assert value.dtype == np.float32 and np.all(np.abs(value) <= 1 / np.sqrt(5))
    again = _make(cell, 3, 5, bias=bias, dtype=np.float32)
    for key, value in c.params.items():
        np.testing.assert_array_equal(value, again.params[key])
    assert type(c).__name__ in repr(c)


@cell_param
def test_state_dict_round_trip_and_errors(cell):
    c, other = _make(cell), _make(cell, seed=4)
    other.load_state_dict(c.state_dict())
    for key, value in c.params.items():
        np.testing.assert_array_equal(other.params[key], value)
    sd = c.state_dict()
    del sd["bias_hh"]
    with pytest.raises(KeyError, match="missing.*bias_hh"):
        other.load_state_dict(sd)
    sd = c.state_dict()
    sd["weight_hh"] = sd["weight_hh"][:, :-1]
    with pytest.raises(ValueError, match="weight_hh.*shape"):
        other.load_state_dict(sd)


# ------------------------------------------------------------------ torch as the oracle

@cell_param
@pytest.mark.parametrize("B", [3, None], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("zero_state", [False, True])
def test_a_loop_of_steps_matches_torch(cell, B, bias, zero_state):
    torch = pytest.importorskip("torch")
    c = _make(cell, bias=bias, seed=2, **({"nonlinearity": "relu"} if cell == "rnn" else {}))
    tcls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell]
    kw = {"nonlinearity": "relu"} if cell == "rnn" else {}
    module = tcls(3, 4, bias=bias, dtype=torch.float64, **kw)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in c.state_dict().items()})
    c.load_state_dict(module.state_dict())   # and back: torch's keys and shapes are ours
    xs, hx, d_hs = _problem(cell, c, 4, B)
    if zero_state:
        hx = None
    states, dxs, d_hx, grads = _loop(c, cell, xs, hx, d_hs)

    txs = torch.from_numpy(xs.copy()).requires_grad_()
    t_hx = None if hx is None else tuple(
        torch.from_numpy(s.copy()).requires_grad_() for s in _parts(cell, hx))
    state, loss = (t_hx if cell == "lstm" else (None if t_hx is None else t_hx[0])), 0
    t_states = []
    for t in range(4):
        state = module(txs[t], state)
        t_states.append(state)
        h = state[0] if cell == "lstm" else state
        loss = loss + (h * torch.from_numpy(d_hs[t])).sum()
    loss.backward()
    for ours, theirs in zip(states, t_states):
        for a, b in zip(_parts(cell, ours), _parts(cell, theirs)):
            assert a.shape == tuple(b.shape)
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dxs, txs.grad.numpy(), rtol=1e-9, atol=1e-12)
    if t_hx is not None:
        for a, b in zip(_parts(cell, d_hx), t_hx):
            np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-9, atol=1e-12)
    for key, param in module.named_parameters():
        np.testing.assert_allclose(grads[key], param.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=key)


# ------------------------------------------------------------------ backends, gradients

@cell_param
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_compiled_and_reference_agree(cell, dtype):
    comp = _make(cell, dtype=dtype, backend="compiled")
    refc = _make(cell, dtype=dtype, backend="reference")
    xs, hx, d_hs = _problem(cell, comp, 3, 5)
    a = _loop(comp, cell, xs, hx, d_hs)
    b = _loop(refc, cell, xs, hx, d_hs)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for sa, sb in zip(a[0], b[0]):
        for x, y in zip(_parts(cell, sa), _parts(cell, sb)):
            assert x.dtype == dtype
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)
    assert a[1].dtype == dtype
    np.testing.assert_allclose(a[1], b[1], rtol=rtol, atol=rtol)
    for x, y in zip(_parts(cell, a[2]), _parts(cell, b[2])):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)
    for key in b[3]:
        assert a[3][key].dtype == dtype
        np.testing.assert_allclose(a[3][key], b[3][key], rtol=rtol, atol=rtol, err_msg=key)


@cell_param
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_gradients_match_finite_differences(cell, backend):
    c = _make(cell, 2, 3, backend=backend)
    xs, hx, d_hs = _problem(cell, c, 3, 2)
    d_c = np.random.default_rng(5).standard_normal((2, 3))   # dL/dc of the last step

    def loss():
        state, total = hx, 0.0
        for t in range(3):
            state, _ = c.forward(xs[t], state)
            total += (_parts(cell, state)[0] * d_hs[t]).sum()
        if cell == "lstm":
            total += (state[1] * d_c).sum()
        return total

    caches, state = [], hx
    for t in range(3):
        state, cache = c.forward(xs[t], state)
        caches.append(cache)
    carry = [np.zeros((2, 3)), d_c]
    total, dxs = {}, [None] * 3
    for t in reversed(range(3)):
        args = (carry[0] + d_hs[t], caches[t]) + ((carry[1],) if cell == "lstm" else ())
        dxs[t], d_prev, grads = c.backward(*args)
        carry = list(_parts(cell, d_prev)) + [None]
        for key, value in grads.items():
            total[key] = total.get(key, 0) + value
    targets = [(k, c.params[k], total[k]) for k in c.params]
    targets += [("x", xs, np.array(dxs))]
    targets += [(f"hx[{i}]", s, g) for i, (s, g) in
                enumerate(zip(_parts(cell, hx), _parts(cell, d_prev)))]
    for name, array, analytic in targets:
        np.testing.assert_allclose(analytic, central_differences(loss, array), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


def test_lstm_backward_with_only_d_c():
    c = _make("lstm")
    x = np.random.default_rng(0).standard_normal((2, 3))
    (h, cc), cache = c.forward(x)
    dx, (dh, dc), grads = c.backward(None, cache, np.ones((2, 4)))
    dx2, (dh2, dc2), grads2 = c.backward(np.zeros((2, 4)), cache, np.ones((2, 4)))
    np.testing.assert_allclose(dx, dx2, rtol=1e-15, atol=0)
    assert np.any(dx)


@cell_param
def test_unbatched_equals_a_batch_of_one(cell):
    c = _make(cell)
    xs, hx, d_hs = _problem(cell, c, 2, None)
    batched_hx = _whole(cell, [s[None] for s in _parts(cell, hx)])
    a = _loop(c, cell, xs, hx, d_hs)
    b = _loop(c, cell, xs[:, None], batched_hx, d_hs[:, None])
    for sa, sb in zip(a[0], b[0]):
        for x, y in zip(_parts(cell, sa), _parts(cell, sb)):
            assert x.shape == (4,)
            np.testing.assert_array_equal(x, y[0])
    assert a[1].shape == (2, 3)
    np.testing.assert_array_equal(a[1], b[1][:, 0])
    for key in a[3]:
        np.testing.assert_array_equal(a[3][key], b[3][key])


# ------------------------------------------------------------------ bad input

def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        RNNCell(3, 0)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="bias"):
        GRUCell(3, 4, bias=1)
    with pytest.raises(TypeError, match="dtype"):
        LSTMCell(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="backend"):
        LSTMCell(3, 4, backend="fast")


@cell_param
def test_forward_and_backward_reject_bad_input(cell):
    c = _make(cell)
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="x_t"):
        c.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="x_t"):
        c.forward(np.zeros((1, 2, 3)))
    with pytest.raises(TypeError, match="x_t"):
        c.forward(x.astype(np.float32))
    bad = np.zeros((3, 4))
    with pytest.raises(ValueError, match="hx"):
        c.forward(x, (bad, None) if cell == "lstm" else bad)
    with pytest.raises(ValueError, match="hx"):
        c.forward(x[0], (bad, None) if cell == "lstm" else bad)   # unbatched x, batched hx
    if cell == "lstm":
        with pytest.raises(TypeError, match="hx"):
            c.forward(x, np.zeros((2, 4)))
    state, cache = c.forward(x)
    with pytest.raises(TypeError, match="cache"):
        c.backward(np.zeros((2, 4)), object())
    with pytest.raises(ValueError, match="d_h"):
        c.backward(np.zeros((3, 4)), cache)
    with pytest.raises(ValueError, match="d_h"):
        c.backward(None, cache)
