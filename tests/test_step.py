"""layer.step(x_t, state): streaming inference, one time step of a unidirectional stack
with the state carried and no tape kept; equal to slicing a full forward."""
import numpy as np
import pytest

from fastbptt import GRU, LSTM, RNN

CLASSES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
cell_param = pytest.mark.parametrize("cell", list(CLASSES))
backend_param = pytest.mark.parametrize("backend", ["compiled", "reference"])


def _states(cell, L, B, H, rng):
    h0 = rng.standard_normal((L, B, H))
    return (h0, rng.standard_normal((L, B, H))) if cell == "lstm" else h0


def _as_tuple(cell, state):
    return state if cell == "lstm" else (state,)


@cell_param
@backend_param
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("B", [1, 5])
def test_steps_equal_slices_of_a_full_forward(cell, backend, num_layers, B):
    layer = CLASSES[cell](3, 4, num_layers=num_layers, dtype=np.float64, seed=0,
                          backend=backend)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, B, 3))
    state0 = _states(cell, num_layers, B, 4, rng)
    out, fin = layer.forward(x, state0)
    tape = layer.tape
    state = state0
    for t in range(6):
        out_t, state = layer.step(x[t], state)
        np.testing.assert_allclose(out_t, out[t], rtol=1e-13, atol=1e-14)
    for a, b in zip(_as_tuple(cell, state), _as_tuple(cell, fin)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    assert layer.tape is tape     # step keeps no tape: a pending backward still works
    layer.backward(np.ones_like(out))


@cell_param
def test_unbatched_step_and_zero_state(cell):
    layer = CLASSES[cell](3, 4, num_layers=2, dtype=np.float32, seed=0)
    x = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    out, fin = layer.forward(x[:, None])
    state = None
    for t in range(4):
        out_t, state = layer.step(x[t], state)
        assert out_t.shape == (4,) and out_t.dtype == np.float32
        np.testing.assert_allclose(out_t, out[t, 0], rtol=1e-6, atol=1e-7)
    for a, b in zip(_as_tuple(cell, state), _as_tuple(cell, fin)):
        assert a.shape == (2, 4)
        np.testing.assert_allclose(a, b[:, 0], rtol=1e-6, atol=1e-7)


@cell_param
def test_step_in_training_mode_is_a_one_step_forward_with_dropout(cell):
    a = CLASSES[cell](3, 4, num_layers=3, dropout=0.5, dtype=np.float64, seed=8)
    b = CLASSES[cell](3, 4, num_layers=3, dropout=0.5, dtype=np.float64, seed=8)
    x = np.random.default_rng(3).standard_normal((2, 3))
    out_t, state = a.step(x)
    out, fin = b.forward(x[None])
    np.testing.assert_array_equal(out_t, out[0])   # the same masks, from the same draws
    for s, f in zip(_as_tuple(cell, state), _as_tuple(cell, fin)):
        np.testing.assert_array_equal(s, f)


@cell_param
def test_step_rejects_bad_input(cell):
    layer = CLASSES[cell](3, 4, num_layers=2, dtype=np.float64)
    with pytest.raises(ValueError, match="x_t"):
        layer.step(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="x_t"):
        layer.step(np.zeros((1, 2, 3)))
    with pytest.raises(TypeError, match="x_t"):
        layer.step(np.zeros((2, 3), np.float32))
    bad = np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match="h0"):
        layer.step(np.zeros((2, 3)), (bad, bad) if cell == "lstm" else bad)
    with pytest.raises(ValueError, match="unidirectional"):
        CLASSES[cell](3, 4, bidirectional=True).step(np.zeros((2, 3), np.float32))


@cell_param
@pytest.mark.parametrize("B", [0, 1, 6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_driver_step_is_the_final_state_of_a_one_step_forward(cell, B, dtype):
    """cells.driver.step (the compiled step, no cache) against its twin, the reference
    forward's final states at T = 1, and the compiled forward's."""
    import fastbptt
    from fastbptt import reference
    from fastbptt.cells import driver
    from fastbptt.cells.spec import SPECS

    spec = SPECS[cell]
    rng = np.random.default_rng(4)
    G, H, I = spec.gates, 5, 3
    x = rng.standard_normal((1, B, I)).astype(dtype)
    states = [rng.standard_normal((B, H)).astype(dtype) for _ in spec.states]
    weights = [rng.standard_normal(s).astype(dtype) * 0.5 for s in
               ((G * H, I), (G * H, H), (G * H,), (G * H,))]
    options = dict(spec.options)   # the RNN's nonlinearity="tanh"
    new = driver.step(spec, x, states, *weights, **options)
    twin = getattr(reference, spec.forward_name)(x, *states, *weights,
                                                 **options)[1].final_states()
    full = getattr(fastbptt, spec.forward_name)(x, *states, *weights,
                                                **options)[1].final_states()
    tol = 1e-13 if dtype == np.float64 else 1e-6
    for a, b, c in zip(new, twin, full):
        assert a.shape == (B, H) and a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
        np.testing.assert_array_equal(a, c)
    with pytest.raises(ValueError, match="one time step"):
        driver.step(spec, np.zeros((2, B, I), dtype), states, *weights, **options)
    with pytest.raises(ValueError, match="h0"):
        driver.step(spec, x, [np.zeros((B + 1, H), dtype)] + states[1:], *weights,
                    **options)
