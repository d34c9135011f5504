"""nn.stepper.Stepper (many single steps of a layer stack, validated once) against its twin
layer.step, and CharLM.sample on it against the loop it replaced (layer.step per
character). A Stepper computes no gradients (inference only), so there is no
finite-difference check here; its numbers are layer.step's, which test_step.py holds to
slices of a full forward and to the reference."""
import numpy as np
import pytest

from _cells import form_cases
from fastbptt import GRU, LSTM, RNN
from fastbptt.app.charlm import CharLM
from fastbptt.cells import driver
from fastbptt.cells.spec import SPECS
from fastbptt.nn import stepper as stepper_module
from fastbptt.nn.stepper import Stepper

CLASSES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
cell_param = pytest.mark.parametrize("cell", list(CLASSES))
STEPS = 25   # enough for both parities many times over


def _state(cell, L, B, H, dtype, rng):
    h0 = rng.standard_normal((L, B, H)).astype(dtype)
    return (h0, rng.standard_normal((L, B, H)).astype(dtype)) if cell == "lstm" else h0


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _assert_same_state(a, b, **tol):
    for x, y in zip(_as_tuple(a), _as_tuple(b)):
        if tol:
            np.testing.assert_allclose(x, y, **tol)
        else:
            np.testing.assert_array_equal(x, y)


def _run_both(layer, xs, state, stepper_layer=None):
    """Step xs (T, B, I) through a Stepper and through layer.step; their outputs and
    final states."""
    stepper = Stepper(stepper_layer or layer, xs.shape[1], state)
    outs_stepper, outs_step = [], []
    for x_t in xs:
        stepper.x[...] = x_t
        outs_stepper.append(stepper.advance().copy())
        out, state = layer.step(x_t, state)
        outs_step.append(out)
    return (np.array(outs_stepper), stepper.state()), (np.array(outs_step), state), stepper


@cell_param
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_stepper_gives_layer_steps_numbers_to_the_bit(cell, num_layers, B, dtype):
    layer = CLASSES[cell](5, 6, num_layers=num_layers, dtype=dtype, seed=0,
                          backend="compiled")
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((STEPS, B, 5)).astype(dtype)
    state = _state(cell, num_layers, B, 6, dtype, rng)
    (out_a, fin_a), (out_b, fin_b), stepper = _run_both(layer, xs, state)
    assert stepper.compiled
    assert out_a.dtype == dtype and out_a.shape == (STEPS, B, 6)
    np.testing.assert_array_equal(out_a, out_b)
    _assert_same_state(fin_a, fin_b)
    for arr in _as_tuple(fin_a):
        assert arr.shape == (num_layers, B, 6) and arr.dtype == dtype


@pytest.mark.parametrize("case", [c for spec in SPECS.values()
                                  for dtype in (np.float32, np.float64)
                                  for c in form_cases(spec, dtype, 1, 3, 9)],
                         ids=lambda c: c.id)
def test_every_step_form_gives_layer_steps_numbers(monkeypatch, case):
    # B from the step-form policy itself (tests/_cells.py): one case per form, the
    # forced ones with the policy swapped in both the driver and the stepper
    if case.forced:
        monkeypatch.setattr(driver, "step_form", case.policy())
        monkeypatch.setattr(stepper_module, "step_form", case.policy())
    _, B, I, H = case.shape
    assert case.runs() == case.form
    layer = CLASSES[case.spec.name](I, H, num_layers=2, dtype=case.dtype, seed=3,
                                    backend="compiled")
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((6, B, I)).astype(case.dtype)
    state = _state(case.spec.name, 2, B, H, case.dtype, rng)
    (out_a, fin_a), (out_b, fin_b), _ = _run_both(layer, xs, state)
    np.testing.assert_array_equal(out_a, out_b)
    _assert_same_state(fin_a, fin_b)


@cell_param
def test_stepper_agrees_with_the_reference(cell):
    compiled = CLASSES[cell](4, 5, num_layers=2, dtype=np.float64, seed=2, backend="compiled")
    reference = CLASSES[cell](4, 5, num_layers=2, dtype=np.float64, seed=2,
                              backend="reference")
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((20, 2, 4))
    state = _state(cell, 2, 2, 5, np.float64, rng)
    fast, ref = Stepper(compiled, 2, state), Stepper(reference, 2, state)
    assert fast.compiled and not ref.compiled
    for x_t in xs:
        fast.x[...] = x_t
        ref.x[...] = x_t
        np.testing.assert_allclose(fast.advance(), ref.advance(), rtol=1e-12, atol=1e-13)
    _assert_same_state(fast.state(), ref.state(), rtol=1e-12, atol=1e-13)


@cell_param
def test_stepper_in_training_mode_drops_as_layer_step_does(cell):
    # two layers seeded alike: the same weights, and the same masks drawn per step
    make = lambda: CLASSES[cell](3, 4, num_layers=3, dtype=np.float32, seed=5,  # noqa: E731
                                 dropout=0.5, backend="compiled")
    layer, twin = make(), make()
    xs = np.random.default_rng(4).standard_normal((10, 2, 3)).astype(np.float32)
    (out_a, fin_a), (out_b, fin_b), _ = _run_both(layer, xs, None, stepper_layer=twin)
    np.testing.assert_array_equal(out_a, out_b)
    _assert_same_state(fin_a, fin_b)


@cell_param
def test_stepper_without_biases_and_with_weights_updated_in_place(cell):
    layer = CLASSES[cell](3, 4, bias=False, dtype=np.float64, seed=6, backend="compiled")
    xs = np.random.default_rng(7).standard_normal((2, 1, 3))
    stepper = Stepper(layer)
    stepper.x[...] = xs[0]
    stepper.advance()
    state = None
    _, state = layer.step(xs[0], state)
    layer.params["weight_hh_l0"] *= 0.5   # the same array: the stepper sees it
    stepper.x[...] = xs[1]
    out, state = layer.step(xs[1], state)
    np.testing.assert_array_equal(stepper.advance(), out)
    _assert_same_state(stepper.state(), state)


def test_stepper_steps_through_layer_step_for_parameters_it_does_not_know():
    layer = LSTM(3, 4, seed=0, backend="compiled")
    layer.params["extra"] = np.zeros(1, np.float32)   # not one of the kernels' four
    xs = np.random.default_rng(8).standard_normal((3, 1, 3)).astype(np.float32)
    (out_a, fin_a), (out_b, fin_b), stepper = _run_both(layer, xs, None)
    assert not stepper.compiled
    np.testing.assert_array_equal(out_a, out_b)
    _assert_same_state(fin_a, fin_b)


@pytest.mark.parametrize("B", [-1, True, 1.5, "2"])
def test_stepper_rejects_a_bad_batch_size(B):
    with pytest.raises(ValueError, match="B must be an int >= 0"):
        Stepper(RNN(3, 4), B)


def test_stepper_rejects_bad_layers_and_states():
    with pytest.raises(ValueError, match="unidirectional"):
        Stepper(GRU(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="h0 must have shape"):
        Stepper(RNN(3, 4, num_layers=2), 1, np.zeros((1, 1, 4), np.float32))
    with pytest.raises(TypeError, match="hx must be a tuple"):
        Stepper(LSTM(3, 4), 1, np.zeros((1, 1, 4), np.float32))
    with pytest.raises(TypeError, match="c0"):
        Stepper(LSTM(3, 4), 1, (np.zeros((1, 1, 4), np.float32), "zeros"))


# ---------------------------------------------------------------- CharLM.sample on it


def _sample_by_layer_steps(model, length, temperature, prime, seed):
    """The generation loop CharLM.sample ran before the Stepper: layer.step per
    character, the head by whole-array expressions."""
    rng = np.random.default_rng(seed)
    V = len(model.vocab)
    generated = []
    if prime:
        context = model.encode(prime)
    else:
        if length == 0:
            return ""
        context = rng.integers(V, size=1)
        generated.append(int(context[0]))
    W_t = np.ascontiguousarray(model.params["head.weight"].T, np.float64) / temperature
    b_t = model.params["head.bias"].astype(np.float64) / temperature
    u = rng.random(length - len(generated))
    output, state = model.layer.forward(model.one_hot(context[:, None]))
    h = output[-1]
    for i in range(len(u)):
        logits = h[0] @ W_t + b_t
        cdf = np.exp(logits - logits.max()).cumsum()
        ix = min(int(cdf.searchsorted(u[i] * cdf[-1], side="right")), V - 1)
        generated.append(ix)
        if i + 1 < len(u):
            h, state = model.layer.step(model.one_hot(np.array([ix])), state)
    return model.decode(generated)


@cell_param
@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample_gives_the_text_of_the_layer_step_loop(cell, backend, num_layers, dtype):
    model = CharLM("abcdefgh .", cell=cell, hidden_size=12, num_layers=num_layers,
                   dtype=dtype, seed=1, backend=backend)
    length = 150 if backend == "compiled" else 40
    for prime, temperature, seed in (("", 0.8, 0), ("ab cd", 1.5, 3), ("", 0.3, 9)):
        assert (model.sample(length, temperature, prime=prime, rng=seed)
                == _sample_by_layer_steps(model, length, temperature, prime, seed))
    assert model.sample(1, rng=2) == _sample_by_layer_steps(model, 1, 1.0, "", 2)


def test_sample_compiled_and_reference_agree():
    model = CharLM("abcdefgh .", cell="lstm", hidden_size=16, dtype="float64", seed=4)
    compiled = model.sample(300, 0.9, prime="a b", rng=5)
    model.backend = "reference"
    assert model.sample(300, 0.9, prime="a b", rng=5) == compiled


def test_advance_checks_and_copies_x_t():
    layer = GRU(3, 4, seed=0, backend="compiled")
    stepper = Stepper(layer, 2)
    x_t = np.random.default_rng(9).standard_normal((2, 3)).astype(np.float32)
    out, _ = layer.step(x_t)
    np.testing.assert_array_equal(stepper.advance(x_t[::-1][::-1]), out)
    np.testing.assert_array_equal(stepper.x, x_t)
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, input_size\)"):
        stepper.advance(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="x_t"):
        stepper.advance(np.zeros((2, 3)))          # float64 into a float32 layer
    with pytest.raises(ValueError, match="x_t must be 2-D"):
        stepper.advance(np.zeros(3, np.float32))


@cell_param
def test_an_empty_batch_steps_to_empty_arrays(cell):
    stepper = Stepper(CLASSES[cell](3, 4, num_layers=2), 0)
    assert stepper.advance().shape == (0, 4)
    for arr in _as_tuple(stepper.state()):
        assert arr.shape == (2, 0, 4)


def test_the_compiled_stack_step_refuses_what_its_wrapper_never_sends():
    # _kernels.step.StackStep trusts the Stepper's validation for shapes and dtypes; what
    # it checks itself are the things that would otherwise touch the wrong memory
    from fastbptt._kernels.step import StackStep
    layer = LSTM(3, 4, num_layers=2, seed=0, dropout=0.5, backend="compiled")
    stepper = Stepper(layer, 2)
    kernel = stepper._kernel
    with pytest.raises(ValueError, match="parity must be 0 or 1"):
        kernel.advance(2)
    with pytest.raises(ValueError, match="masks must be 1 arrays"):
        kernel.advance(0, [])
    with pytest.raises(ValueError, match=r"masks\[0\] must have B\*H = 8 elements"):
        kernel.advance(0, [np.ones(3, np.float32)])
    f32 = np.zeros((2, 4), np.float32)
    parts = ([np.zeros((2, 2), np.float32)], [f32], [f32], [np.zeros(4, np.float32)],
             [np.zeros((2, 2, 4), np.float32)], [None], [None], [None], [None])
    StackStep("rnn", 0, False, *parts, np.zeros(2, np.intp))   # these are fine
    with pytest.raises(ValueError, match="C-contiguous"):
        StackStep("rnn", 0, False, [np.zeros((2, 2), np.float32).T], *parts[1:],
                  np.zeros(2, np.intp))
    with pytest.raises(ValueError, match="index must have B = 2 elements"):
        StackStep("rnn", 0, False, *parts, np.zeros(3, np.intp))


def test_the_input_buffer_is_written_in_place_not_rebound():
    stepper = Stepper(RNN(3, 4))
    with pytest.raises(AttributeError):
        stepper.x = np.ones((1, 3), np.float32)


@cell_param
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_one_hot_steps_equal_steps_on_one_hot_rows(cell, backend):
    # advance_index's twin is advance on the one-hot rows themselves
    make = lambda: CLASSES[cell](7, 5, num_layers=2, dtype=np.float32,  # noqa: E731
                                 seed=1, backend=backend)
    by_index, by_rows = Stepper(make(), 3), Stepper(make(), 3)
    rng = np.random.default_rng(2)
    for _ in range(12):
        index = rng.integers(0, 7, size=3)
        by_index.index[...] = index
        rows = np.zeros((3, 7), np.float32)
        rows[np.arange(3), index] = 1
        np.testing.assert_array_equal(by_index.advance_index(), by_rows.advance(rows))
    _assert_same_state(by_index.state(), by_rows.state())


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("bad", [-1, 7])
def test_one_hot_indices_outside_the_inputs_are_refused(backend, bad):
    stepper = Stepper(LSTM(7, 5, backend=backend), 2)
    stepper.index[...] = [0, bad]
    with pytest.raises(ValueError, match=r"index.* must lie in \[0, input_size\)"):
        stepper.advance_index()


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_the_rnn_stepper_keeps_the_nonlinearity(nonlinearity):
    layer = RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, dtype=np.float64, seed=2,
                backend="compiled")
    xs = np.random.default_rng(5).standard_normal((8, 2, 3))
    (out_a, fin_a), (out_b, fin_b), _ = _run_both(layer, xs, None)
    np.testing.assert_array_equal(out_a, out_b)
    _assert_same_state(fin_a, fin_b)


def test_a_projected_lstm_steps_through_layer_step():
    # proj_size adds weight_hr_l{k}, which the compiled stack step does not know
    layer = LSTM(3, 6, num_layers=2, proj_size=4, seed=0, backend="compiled")
    xs = np.random.default_rng(6).standard_normal((5, 2, 3)).astype(np.float32)
    (out_a, fin_a), (out_b, fin_b), stepper = _run_both(layer, xs, None)
    assert not stepper.compiled and out_a.shape == (5, 2, 4)
    np.testing.assert_array_equal(out_a, out_b)
    _assert_same_state(fin_a, fin_b)
