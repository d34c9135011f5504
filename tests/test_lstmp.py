"""The LSTM with a projection (issue 18 item 2; LSTMP, torch's proj_size): lstm_forward /
lstm_backward with W_hr, compiled against the reference twin, every gradient against
finite differences, nn.LSTM(proj_size=) against torch.nn.LSTM, and the bad inputs.

    c_t = f c_{t-1} + i g,  m_t = o tanh(c_t) (B, H),  h_t = m_t W_hr^T (B, P)
"""
import numpy as np
import pytest

import fastbptt
from _helpers import assert_close, central_differences, raises_naming, tol_for
from fastbptt import GRU, LSTM, RNN, LSTMPGrads, reference
from fastbptt.cells.spec import LSTMP, STEP_FORMS, step_form

MODULES = {"compiled": fastbptt, "reference": reference}


def _problem(T, B, I, H, P, dtype, batch_first=False, bias=True, seed=0):
    """Forward arguments (x, h0, c0, W_ih, W_hh, b_ih, b_hh), W_hr and upstream gradients
    (dh, dh_n, dc_n) of a projected LSTM, well conditioned."""
    rng = np.random.default_rng(seed)

    def r(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    x = r(B, T, I) if batch_first else r(T, B, I)
    args = (x, r(B, P, scale=0.5), r(B, H, scale=0.5), r(4 * H, I, scale=0.5),
            r(4 * H, P, scale=0.5), r(4 * H, scale=0.3) if bias else None,
            r(4 * H, scale=0.3) if bias else None)
    W_hr = r(P, H, scale=0.5)
    upstream = (r(B, T, P) if batch_first else r(T, B, P), r(B, P), r(B, H))
    return args, W_hr, upstream


def _run(module, args, W_hr, upstream, **kw):
    h, cache = module.lstm_forward(*args, W_hr=W_hr, **kw)
    grads = module.lstm_backward(upstream[0], cache, upstream[1], upstream[2])
    return h, cache, grads


# The batch sizes that reach each form of the per-step product h_{t-1} W_hh^T, derived
# from the policy (cells/spec.py step_form) on the projected sizes (its H is P here).
P_FORMS = 6


def _batch_for(form, dtype):
    for B in range(1, 3 * P_FORMS):
        if step_form(LSTMP, B, P_FORMS, dtype) == form:
            return B
    return None


FORM_CASES = [(form, dt) for form in STEP_FORMS for dt in (np.float32, np.float64)
              if _batch_for(form, dt) is not None]


@pytest.mark.parametrize("form,dtype", FORM_CASES,
                         ids=[f"{f}-{np.dtype(d).name}" for f, d in FORM_CASES])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_compiled_matches_reference(form, dtype, batch_first, with_lengths, bias):
    B = _batch_for(form, dtype)
    T, I, H = 7, 4, 9
    args, W_hr, upstream = _problem(T, B, I, H, P_FORMS, dtype, batch_first, bias)
    lengths = np.random.default_rng(1).integers(0, T + 1, B) if with_lengths else None
    results = {}
    for name, module in MODULES.items():
        h, cache, grads = _run(module, args, W_hr, upstream, batch_first=batch_first,
                               lengths=lengths)
        assert isinstance(grads, LSTMPGrads)
        results[name] = [h, cache.h_n, cache.c_n, *(g for g in grads if g is not None)]
    for a, e in zip(*results.values()):
        assert a.dtype == e.dtype == np.dtype(dtype)   # float32 in, float32 out
        assert_close(a, e, *tol_for(dtype))
    h = results["compiled"][0]
    assert h.shape == ((B, T, P_FORMS) if batch_first else (T, B, P_FORMS))
    if with_lengths:   # zero past each sequence's length
        mask = np.arange(T)[:, None] < lengths[None, :]
        assert not np.any((h.transpose(1, 0, 2) if batch_first else h)[~mask])


@pytest.mark.parametrize("impl", list(MODULES))
@pytest.mark.parametrize("batch_first", [False, True])
def test_every_gradient_matches_finite_differences(impl, batch_first):
    module = MODULES[impl]
    T, B, I, H, P = 4, 3, 2, 4, 2
    args, W_hr, (dh, dh_n, dc_n) = _problem(T, B, I, H, P, np.float64, batch_first, seed=3)
    lengths = np.array([4, 2, 3])
    arrays = [a.copy() for a in args] + [W_hr.copy()]

    def loss():
        h, cache = module.lstm_forward(*arrays[:7], W_hr=arrays[7], batch_first=batch_first,
                                       lengths=lengths)
        return float(np.sum(h * dh) + np.sum(cache.h_n * dh_n) + np.sum(cache.c_n * dc_n))

    _, cache = module.lstm_forward(*arrays[:7], W_hr=arrays[7], batch_first=batch_first,
                                   lengths=lengths)
    grads = module.lstm_backward(dh, cache, dh_n, dc_n)
    analytic = [grads.dx, grads.dh0, grads.dc0, grads.dW_ih, grads.dW_hh, grads.db_ih,
                grads.dW_hr]
    for name, array, g in zip(["dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "dW_hr"],
                              [arrays[i] for i in (0, 1, 2, 3, 4, 5, 7)], analytic):
        assert_close(g, central_differences(loss, array), 1e-7, err_msg=name)
    np.testing.assert_array_equal(grads.db_ih, grads.db_hh)


@pytest.mark.parametrize("impl", list(MODULES))
def test_checkpoint_agrees_with_the_plain_path(impl):
    module = MODULES[impl]
    args, W_hr, upstream = _problem(11, 3, 2, 5, 3, np.float64, seed=4)
    lengths = np.array([11, 4, 7])
    plain = _run(module, args, W_hr, upstream, lengths=lengths)
    for k in (3, True):
        seg = _run(module, args, W_hr, upstream, lengths=lengths, checkpoint=k)
        assert_close(seg[0], plain[0], 1e-12)
        assert_close(seg[1].h_n, plain[1].h_n, 1e-12)
        assert_close(seg[1].c_n, plain[1].c_n, 1e-12)
        assert type(seg[2]) is LSTMPGrads
        for a, e in zip(seg[2], plain[2]):
            assert_close(a, e, 1e-10)


@pytest.mark.parametrize("T,B,I", [(0, 3, 2), (4, 0, 2), (4, 3, 0)])
def test_empty_problems_and_no_input(T, B, I):
    H, P = 4, 2
    args, W_hr, upstream = _problem(T, B, I, H, P, np.float64, seed=5)
    (h, cache, grads), (h_r, cache_r, grads_r) = [_run(m, args, W_hr, upstream)
                                                  for m in MODULES.values()]
    assert h.shape == (T, B, P) and cache.h_n.shape == (B, P) and cache.c_n.shape == (B, H)
    assert_close(h, h_r, 1e-12)
    assert_close(cache.c_n, cache_r.c_n, 1e-12)
    for a, e in zip(grads, grads_r):
        assert a.shape == e.shape
        assert_close(a, e, 1e-12)
    assert grads.dW_hr.shape == (P, H) and grads.dW_hh.shape == (4 * H, P)
    if T == 0:   # nothing ran: the final states' gradients reach the initial states
        np.testing.assert_array_equal(grads.dh0, upstream[1])
        np.testing.assert_array_equal(grads.dc0, upstream[2])


def test_the_projected_spec_is_the_lstm_with_its_own_records():
    """LSTMP is no cell of its own (not in SPECS: one LSTM in every table), but its
    kernel, adapter and Grads record are the projected ones."""
    import importlib

    from fastbptt.cells.spec import LSTM as LSTM_SPEC
    from fastbptt.cells.spec import SPECS
    assert LSTMP not in SPECS.values() and LSTMP.forward_name == "lstm_forward"
    assert LSTMP.states == LSTM_SPEC.states and LSTMP.gates == LSTM_SPEC.gates
    kernel = importlib.import_module(LSTMP.kernel)
    assert hasattr(kernel, "lstmp_forward") and hasattr(kernel, "lstmp_backward")
    assert importlib.import_module(LSTMP.adapter).SPEC is LSTMP
    assert LSTMPGrads._fields == fastbptt.LSTMGrads._fields + ("dW_hr",)


def test_without_W_hr_nothing_changes():
    """W_hr=None is the plain LSTM and its 7-field LSTMGrads."""
    args, _, (dh, dh_n, dc_n) = _problem(5, 2, 3, 4, 4, np.float64, seed=6)
    h, cache = fastbptt.lstm_forward(*args, W_hr=None)
    h0, cache0 = fastbptt.lstm_forward(*args)
    np.testing.assert_array_equal(h, h0)
    grads = fastbptt.lstm_backward(dh, cache, dh_n, dc_n)
    assert type(grads) is fastbptt.LSTMGrads and len(grads) == 7


# ---------------------------------------------------------------- bad input

def _bad(**changes):
    args, W_hr, _ = _problem(5, 2, 3, 4, 2, np.float64, seed=7)
    names = ["x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"]
    kw = dict(zip(names, args), W_hr=W_hr)
    kw.update(changes)
    return kw


BAD_FORWARD = [
    ("W_hr_P_equals_H", dict(W_hr=np.zeros((4, 4))), ValueError, [r"W_hr", r"0 < P < H"]),
    ("W_hr_P_above_H", dict(W_hr=np.zeros((5, 4))), ValueError, [r"W_hr", r"0 < P < H"]),
    ("W_hr_P_zero", dict(W_hr=np.zeros((0, 4))), ValueError, [r"W_hr", r"0 < P < H"]),
    ("W_hr_1d", dict(W_hr=np.zeros(8)), ValueError, [r"W_hr must be 2-D"]),
    ("W_hr_float32", dict(W_hr=np.zeros((2, 4), np.float32)), TypeError,
     [r"mixed dtypes: W_hr"]),
    ("W_hr_int", dict(W_hr=np.zeros((2, 4), np.int64)), TypeError, [r"W_hr must have dtype"]),
    ("W_hh_not_P_wide", dict(W_hh=np.zeros((16, 4))), ValueError,
     [r"W_hh must have shape \(4\*H, P\) = \(16, 2\)"]),
    ("W_hr_H_mismatch", dict(W_hr=np.zeros((2, 5))), ValueError, [r"W_hh must have shape"]),
    ("h0_H_wide", dict(h0=np.zeros((2, 4))), ValueError, [r"h0 must have shape \(B, P\)"]),
    ("c0_P_wide", dict(c0=np.zeros((2, 2))), ValueError, [r"c0 must have shape \(B, H\)"]),
    ("bias_shape", dict(b_ih=np.zeros(8)), ValueError, [r"b_ih must have shape"]),
    ("one_bias", dict(b_hh=None), ValueError, [r"b_ih and b_hh"]),
]


@pytest.mark.parametrize("impl", list(MODULES))
@pytest.mark.parametrize("label,changes,exc,needles", BAD_FORWARD,
                         ids=[b[0] for b in BAD_FORWARD])
def test_bad_forward_arguments_are_named(impl, label, changes, exc, needles):
    kw = _bad(**changes)
    raises_naming(exc, needles, lambda: MODULES[impl].lstm_forward(**kw))


@pytest.mark.parametrize("impl", list(MODULES))
def test_bad_backward_arguments_are_named(impl):
    module = MODULES[impl]
    _, cache = module.lstm_forward(**_bad())
    B, T, P, H = 2, 5, 2, 4
    raises_naming(ValueError, [r"dh must have shape \(T, B, P\)"],
                  lambda: module.lstm_backward(np.zeros((T, B, H)), cache))
    raises_naming(ValueError, [r"dh_n must have shape \(B, P\)"],
                  lambda: module.lstm_backward(None, cache, np.zeros((B, H))))
    raises_naming(ValueError, [r"dc_n must have shape \(B, H\)"],
                  lambda: module.lstm_backward(None, cache, None, np.zeros((B, P))))
    raises_naming(ValueError, [r"give dh"], lambda: module.lstm_backward(None, cache))
    raises_naming(TypeError, [r"mixed dtypes: dh"],
                  lambda: module.lstm_backward(np.zeros((T, B, P), np.float32), cache))


def test_check_finite_covers_W_hr():
    kw = _bad()
    kw["W_hr"] = kw["W_hr"].copy()
    kw["W_hr"][0, 0] = np.nan
    for module in MODULES.values():
        raises_naming(ValueError, [r"W_hr must not contain NaN"],
                      lambda: module.lstm_forward(**kw, check_finite=True))


@pytest.mark.parametrize("proj_size,exc,needle", [
    (2.0, TypeError, r"proj_size must be an int"),
    ("2", TypeError, r"proj_size must be an int"),
    (True, TypeError, r"proj_size must be an int"),
    (-1, ValueError, r"proj_size must be 0 \(no projection\) or a positive int"),
    (5, ValueError, r"proj_size must be smaller than hidden_size = 5"),
    (6, ValueError, r"proj_size must be smaller than hidden_size"),
])
def test_layer_refuses_a_bad_proj_size(proj_size, exc, needle):
    with pytest.raises(exc, match=needle):
        LSTM(3, 5, proj_size=proj_size)


@pytest.mark.parametrize("cls", [RNN, GRU])
def test_proj_size_is_for_lstm_only(cls):
    with pytest.raises(ValueError, match=rf"proj_size is only supported for LSTM, not "
                                         rf"{cls.__name__}"):
        cls(3, 5, proj_size=2)
    assert cls(3, 5, proj_size=0).proj_size == 0   # torch's default is accepted


def test_layer_shapes_keys_and_bad_states():
    layer = LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=2, dtype=np.float64,
                 seed=0)
    shapes = {k: v.shape for k, v in layer.params.items()}
    assert shapes["weight_hh_l0"] == (24, 2) and shapes["weight_hr_l0_reverse"] == (2, 6)
    assert shapes["weight_ih_l1"] == (24, 4)   # D*P inputs above layer 0
    # torch's order within a layer and direction: w_ih, w_hh, b_ih, b_hh, w_hr
    assert list(layer.params)[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                      "bias_hh_l0", "weight_hr_l0"]
    x = np.zeros((5, 3, 3))
    out, (h_n, c_n) = layer.forward(x)
    assert out.shape == (5, 3, 4) and h_n.shape == (4, 3, 2) and c_n.shape == (4, 3, 6)
    with pytest.raises(ValueError, match=r"h0 must have shape .*proj_size\) = \(4, 3, 2\)"):
        layer.forward(x, (np.zeros((4, 3, 6)), np.zeros((4, 3, 6))))
    with pytest.raises(ValueError, match=r"d_hn must have shape .*proj_size"):
        layer.backward(None, np.zeros((4, 3, 6)))
    with pytest.raises(ValueError, match=r"d_output must have the output's shape"):
        layer.backward(np.zeros((5, 3, 12)))
    bad = layer.state_dict()
    bad["weight_hr_l1"] = np.zeros((6, 2))
    with pytest.raises(ValueError, match=r"weight_hr_l1.*must have shape \(2, 6\)"):
        layer.load_state_dict(bad)
    missing = layer.state_dict()
    del missing["weight_hr_l0"]
    with pytest.raises(KeyError, match=r"missing \['weight_hr_l0'\]"):
        layer.load_state_dict(missing)
    assert "proj_size=2" in repr(layer)


# ---------------------------------------------------------------- the layer

@pytest.mark.parametrize("backend", list(MODULES))
def test_layer_gradients_match_finite_differences(backend):
    layer = LSTM(2, 4, num_layers=2, bidirectional=True, proj_size=2, dtype=np.float64,
                 seed=1, backend=backend)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 2))
    lengths = np.array([4, 3])
    d_out = rng.standard_normal((4, 2, 4))

    def loss():
        return float(np.sum(layer.forward(x, lengths=lengths)[0] * d_out))

    layer.forward(x, lengths=lengths)
    dx, grads = layer.backward(d_out)
    for key in ("weight_hr_l0", "weight_hr_l1_reverse", "weight_hh_l1", "weight_ih_l1"):
        assert_close(grads[key], central_differences(loss, layer.params[key]), 1e-7,
                     err_msg=key)
    assert_close(dx, central_differences(loss, x), 1e-7, err_msg="dx")


@pytest.mark.parametrize("backend", list(MODULES))
def test_step_equals_slicing_a_forward(backend):
    layer = LSTM(3, 5, num_layers=2, proj_size=3, dtype=np.float64, seed=3, backend=backend)
    x = np.random.default_rng(4).standard_normal((4, 2, 3))
    out, (h_n, c_n) = layer.forward(x)
    state = None
    for t in range(4):
        out_t, state = layer.step(x[t], state)
        assert_close(out_t, out[t], 1e-12)
    assert_close(state[0], h_n, 1e-12)
    assert_close(state[1], c_n, 1e-12)


# ---------------------------------------------------------------- against torch

def _torch_pass(torch, module, x, states, d_out, d_fin, lengths, batch_first):
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_states = tuple(torch.from_numpy(s.copy()).requires_grad_() for s in states)
    inp = tx
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            tx, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
    t_out, t_fin = module(inp, t_states)
    if lengths is not None:
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(t_out, batch_first=batch_first,
                                                          total_length=x.shape[1 if
                                                                               batch_first
                                                                               else 0])
    loss = (t_out * torch.from_numpy(d_out)).sum()
    for f, d in zip(t_fin, d_fin):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()
    return t_out, t_fin, tx, t_states


def _assert_rel(a, b, rtol, what):
    """|a - b| <= rtol max|b|: the relative error of the whole array."""
    b = b.detach().numpy() if hasattr(b, "detach") else b
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    assert float(np.max(np.abs(a - b), initial=0.0)) <= rtol * scale, what


@pytest.mark.parametrize("backend", list(MODULES))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_matches_torch(backend, num_layers, bidirectional, batch_first, with_lengths):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    T, B, I, H, P = 6, 4, 3, 7, 3
    module = torch.nn.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                           batch_first=batch_first, proj_size=P, dtype=torch.float64)
    layer = LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first, proj_size=P, dtype=np.float64, backend=backend)
    layer.load_state_dict(module.state_dict())
    rng = np.random.default_rng(8)
    LD = num_layers * (2 if bidirectional else 1)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    states = (rng.standard_normal((LD, B, P)), rng.standard_normal((LD, B, H)))
    D = 2 if bidirectional else 1
    d_out = rng.standard_normal((B, T, D * P) if batch_first else (T, B, D * P))
    d_fin = (rng.standard_normal((LD, B, P)), rng.standard_normal((LD, B, H)))
    lengths = np.array([6, 2, 5, 1]) if with_lengths else None

    t_out, t_fin, tx, t_states = _torch_pass(torch, module, x, states, d_out, d_fin,
                                             lengths, batch_first)
    out, fin = layer.forward(x, states, lengths=lengths)
    dx, grads = layer.backward(d_out, *d_fin)
    rtol = 1e-9
    _assert_rel(out, t_out, rtol, "output")
    for a, b, name in zip(fin, t_fin, ("h_n", "c_n")):
        _assert_rel(a, b, rtol, name)
    _assert_rel(dx, tx.grad, rtol, "dx")
    for a, b, name in zip((layer.d_h0, layer.d_c0), t_states, ("d_h0", "d_c0")):
        _assert_rel(a, b.grad, rtol, name)
    assert list(grads) == [k for k, _ in module.named_parameters()]
    for key, param in module.named_parameters():
        _assert_rel(grads[key], param.grad, rtol, key)


def test_state_dicts_round_trip_both_ways():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    module = torch.nn.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4)
    layer = LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4)
    layer.load_state_dict(module.state_dict())   # torch -> fastbptt
    assert list(layer.state_dict()) == list(module.state_dict())
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(layer.params[key], value.numpy())
    ours = LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4, seed=5)
    back = torch.nn.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for key, value in back.state_dict().items():   # fastbptt -> torch
        np.testing.assert_array_equal(value.numpy(), ours.params[key])


def test_torch_lstm_1024_proj_256_state_dict_loads_and_matches_in_eval():
    """The issue's case: a torch nn.LSTM(1024, 1024, proj_size=256) loads and gives
    torch's outputs and gradients in evaluation mode (a short sequence keeps it quick)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(1024, 1024, proj_size=256, dtype=torch.float64).eval()
    layer = LSTM(1024, 1024, proj_size=256, dtype=np.float64).eval()
    layer.load_state_dict(module.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 1024))
    d_out = rng.standard_normal((3, 2, 256))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, (t_h, t_c) = module(tx)
    (t_out * torch.from_numpy(d_out)).sum().backward()
    out, (h_n, c_n) = layer.forward(x)
    dx, grads = layer.backward(d_out)
    _assert_rel(out, t_out, 1e-9, "output")
    _assert_rel(h_n, t_h, 1e-9, "h_n")
    _assert_rel(c_n, t_c, 1e-9, "c_n")
    _assert_rel(dx, tx.grad, 1e-9, "dx")
    for key, param in module.named_parameters():
        _assert_rel(grads[key], param.grad, 1e-9, key)


def test_float32_layer_matches_torch_to_float32_rounding():
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    module = torch.nn.LSTM(5, 8, proj_size=3, batch_first=True)
    layer = LSTM(5, 8, proj_size=3, batch_first=True)
    layer.load_state_dict(module.state_dict())
    x = np.random.default_rng(9).standard_normal((4, 6, 5)).astype(np.float32)
    out, (h_n, c_n) = layer.forward(x)
    t_out, (t_h, t_c) = module(torch.from_numpy(x))
    assert out.dtype == h_n.dtype == c_n.dtype == np.float32
    _assert_rel(out, t_out, 1e-5, "output")
    _assert_rel(c_n, t_c, 1e-5, "c_n")
