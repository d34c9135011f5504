"""Truncated BPTT (fastbptt.training.tbptt): one window == full BPTT, the carried state == the full
forward's state at every boundary, window gradients == finite differences with the
carried state held fixed and == a direct computation for k1 < k2, resets == separate
runs; RNN, LSTM, GRU, two layers, batch_first; bad input."""
import numpy as np
import pytest

from fastbptt import RNN, Adam, TruncatedBPTT
from fastbptt.cells.spec import CELLS, get_spec
from fastbptt.nn import LAYERS as CLASSES
from fastbptt.training.tbptt import window_schedule

cell_param = pytest.mark.parametrize("cell", CELLS)

T, B, I, H = 11, 2, 3, 4


def _layer(cell, num_layers=2, batch_first=False, backend="compiled", seed=0):
    return CLASSES[cell](I, H, num_layers=num_layers, batch_first=batch_first,
                         dtype=np.float64, seed=seed, backend=backend)


def _data(batch_first=False, seed=1, steps=T):
    """x and a fixed weighting R of the outputs: the loss is sum(output * R)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, B, I))
    R = rng.standard_normal((steps, B, H))
    if batch_first:
        return x.transpose(1, 0, 2).copy(), R.transpose(1, 0, 2).copy()
    return x, R


def _linear_loss(R, batch_first=False):
    """loss_fn for TruncatedBPTT: L = sum over the counted steps of output * R."""
    def loss_fn(output, loss_start, stop):
        r = R[:, loss_start:stop] if batch_first else R[loss_start:stop]
        return float(np.sum(output * r)), r.copy()
    return loss_fn


def _state_after(layer, x, t, batch_first=False):
    """The layer's state (h, or (h, c)) after steps [0, t) from zeros, by one forward."""
    if t == 0:
        return None
    _, final = layer.forward(x[:, :t] if batch_first else x[:t])
    return final


def _as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


def _assert_state_equal(actual, expected, exact=True):
    if expected is None:
        assert actual is None
        return
    for a, e in zip(_as_list(actual), _as_list(expected)):
        if exact:
            np.testing.assert_array_equal(a, e)
        else:
            np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------ the schedule

def test_window_schedule_by_hand():
    # k1 = k2 = 4: consecutive chunks, the last one short
    assert window_schedule(10, 4, 4) == [(0, 0, 4, 4), (4, 4, 8, 8), (8, 8, 10, 10)]
    # k1 = 3, k2 = 5: every 3 steps backprop 5; 2 burn-in steps, clipped at 0
    assert window_schedule(10, 3, 5) == [(0, 0, 3, 1), (1, 3, 6, 4), (4, 6, 9, 7),
                                         (7, 9, 10, 10)]
    # a reset before step 5 starts a fresh stretch: no window crosses it
    resets = np.zeros(10, bool)
    resets[5] = True
    assert window_schedule(10, 3, 5, resets) == [(0, 0, 3, 1), (1, 3, 5, 5),
                                                 (5, 5, 8, 6), (6, 8, 10, 10)]
    # k2 much larger than k1: the early windows all start at 0
    assert window_schedule(6, 2, 10) == [(0, 0, 2, 0), (0, 2, 4, 0), (0, 4, 6, 6)]


# ------------------------------------------------------------------ one window == full BPTT

@cell_param
def test_one_window_over_the_whole_sequence_is_full_bptt(cell):
    layer = _layer(cell)
    x, R = _data()
    tb = TruncatedBPTT(layer, T)
    (window,) = list(tb.run(x, _linear_loss(R)))
    assert (window.start, window.loss_start, window.stop) == (0, 0, T)

    out, final = layer.forward(x)
    dx, grads = layer.backward(R)
    assert window.loss == pytest.approx(float(np.sum(out * R)), rel=1e-14)
    assert set(window.grads) == set(grads)
    for k in grads:
        np.testing.assert_array_equal(window.grads[k], grads[k], err_msg=k)
    np.testing.assert_array_equal(window.dx, dx)
    _assert_state_equal(tb.state, final)


# ------------------------------------------------------------------ the carried state

@cell_param
@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("k1, k2", [(3, 3), (1, 1), (3, 5), (2, 7)])
def test_carried_state_is_the_full_forward_state_at_every_boundary(cell, backend, k1, k2):
    layer = _layer(cell, backend=backend)
    x, R = _data()
    tb = TruncatedBPTT(layer, k1, k2)
    expected = window_schedule(T, k1, k2)
    windows = 0
    for window, (start, loss_start, stop, next_start) in zip(tb.run(x, _linear_loss(R)),
                                                            expected):
        assert (window.start, window.loss_start, window.stop) == (start, loss_start, stop)
        # The reference twin loops step by step: the chunked state is bit-identical.
        # The compiled forward does the input projection as one GEMM over all steps, whose
        # rounding may depend on the number of rows: equal to the last bits.
        _assert_state_equal(tb.state, _state_after(layer, x, next_start),
                            exact=backend == "reference")
        windows += 1
    assert windows == len(expected)
    _assert_state_equal(tb.state, _state_after(layer, x, T), exact=backend == "reference")
    n_states = len(get_spec(cell).states)
    if n_states > 1:   # (h, c): one (L, B, H) array per state
        assert isinstance(tb.state, tuple) and len(tb.state) == n_states
        assert all(state.shape == (2, B, H) for state in tb.state)


@cell_param
def test_state_carries_across_run_calls(cell):
    layer = _layer(cell, backend="reference")
    x, R = _data()
    tb = TruncatedBPTT(layer, 4)
    list(tb.run(x[:6], _linear_loss(R[:6])))
    list(tb.run(x[6:], _linear_loss(R[6:])))
    _assert_state_equal(tb.state, _state_after(layer, x, T))


# ------------------------------------------------------------------ window gradients

def _window_loss(layer, x, R, state, start, loss_start, stop):
    out, _ = layer.forward(x[start:stop], state)
    return float(np.sum(out[loss_start - start:] * R[loss_start:stop]))


@cell_param
@pytest.mark.parametrize("k1, k2", [(4, 4), (3, 5)])
def test_window_gradients_match_finite_differences_with_the_carried_state_fixed(cell, k1,
                                                                                  k2):
    layer = _layer(cell)
    x, R = _data()
    tb = TruncatedBPTT(layer, k1, k2)
    checked = 0
    for window in tb.run(x, _linear_loss(R)):
        if window.start == 0:
            continue   # check the windows that start from a carried, non-zero state
        state = _state_after(layer, x, window.start)
        args = (x, R, state, window.start, window.loss_start, window.stop)
        for key, p in layer.params.items():
            numeric = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                saved = p[idx]
                p[idx] = saved + 1e-6
                up = _window_loss(layer, *args)
                p[idx] = saved - 1e-6
                down = _window_loss(layer, *args)
                p[idx] = saved
                numeric[idx] = (up - down) / 2e-6
            np.testing.assert_allclose(window.grads[key], numeric, rtol=1e-6, atol=1e-8,
                                       err_msg=f"{key} window {window.start}")
        checked += 1
        if checked == 2:
            break
    assert checked == 2


@cell_param
@pytest.mark.parametrize("k1, k2", [(3, 5), (2, 7), (1, 4)])
def test_k1_below_k2_windows_equal_a_direct_forward_backward(cell, k1, k2):
    layer = _layer(cell)
    x, R = _data()
    tb = TruncatedBPTT(layer, k1, k2)
    for window in tb.run(x, _linear_loss(R)):
        state = _state_after(layer, x, window.start)
        out, _ = layer.forward(x[window.start:window.stop], state)
        d_out = R[window.start:window.stop].copy()
        d_out[:window.loss_start - window.start] = 0   # burn-in: no loss
        dx, grads = layer.backward(d_out)
        for k in grads:
            np.testing.assert_allclose(window.grads[k], grads[k], rtol=1e-12, atol=1e-12,
                                       err_msg=f"{k} window {window.start}")
        np.testing.assert_allclose(window.dx, dx, rtol=1e-12, atol=1e-12)
        assert window.loss == pytest.approx(
            float(np.sum(out[window.loss_start - window.start:]
                         * R[window.loss_start:window.stop])), rel=1e-12)


# ------------------------------------------------------------------ resets

@cell_param
@pytest.mark.parametrize("k1, k2", [(3, 3), (2, 4)])
def test_resets_equal_separate_runs(cell, k1, k2):
    layer = _layer(cell)
    x, R = _data()
    resets = np.zeros(T, bool)
    resets[[0, 4, 9]] = True
    tb = TruncatedBPTT(layer, k1, k2)
    tb.state = _state_after(layer, x, 3)   # a stale state that resets[0] must drop
    together = list(tb.run(x, _linear_loss(R), resets=resets))
    state_together = tb.state

    separate = []
    for lo, hi in ((0, 4), (4, 9), (9, T)):
        piece = TruncatedBPTT(layer, k1, k2)
        for w in piece.run(x[lo:hi], _linear_loss(R[lo:hi])):
            separate.append((w, lo))
    assert len(together) == len(separate)
    for w, (s, lo) in zip(together, separate):
        assert (w.start, w.loss_start, w.stop) == (s.start + lo, s.loss_start + lo,
                                                   s.stop + lo)
        assert w.loss == s.loss
        for k in w.grads:
            np.testing.assert_array_equal(w.grads[k], s.grads[k], err_msg=k)
    _assert_state_equal(state_together, piece.state)


@cell_param
def test_reset_rows_zeroes_only_those_rows(cell):
    layer = _layer(cell)
    x, R = _data()
    tb = TruncatedBPTT(layer, 5)
    list(tb.run(x, _linear_loss(R)))
    before = [s.copy() for s in _as_list(tb.state)]
    held = tb.state
    tb.reset(np.array([True, False]))
    for s, b in zip(_as_list(tb.state), before):
        assert np.all(s[:, 0] == 0)
        np.testing.assert_array_equal(s[:, 1], b[:, 1])
    for s, b in zip(_as_list(held), before):   # the old state object is not written
        np.testing.assert_array_equal(s, b)
    tb.reset([1])
    assert all(np.all(s == 0) for s in _as_list(tb.state))
    tb.reset()
    assert tb.state is None


# ------------------------------------------------------------------ layouts and training

@cell_param
@pytest.mark.parametrize("k1, k2", [(3, 3), (3, 5)])
def test_batch_first_matches_time_major(cell, k1, k2):
    x, R = _data()
    tm = TruncatedBPTT(_layer(cell), k1, k2)
    bf = TruncatedBPTT(_layer(cell, batch_first=True), k1, k2)
    xb, Rb = x.transpose(1, 0, 2).copy(), R.transpose(1, 0, 2).copy()
    for a, b in zip(tm.run(x, _linear_loss(R)), bf.run(xb, _linear_loss(Rb, True))):
        assert (a.start, a.loss_start, a.stop) == (b.start, b.loss_start, b.stop)
        assert a.loss == pytest.approx(b.loss, rel=1e-12)
        for k in a.grads:
            np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b.dx, a.dx.transpose(1, 0, 2), rtol=1e-12, atol=1e-12)
    for a, b in zip(_as_list(tm.state), _as_list(bf.state)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@cell_param
def test_float32_stays_float32(cell):
    layer = CLASSES[cell](I, H, dtype=np.float32, seed=0)
    x, R = (a.astype(np.float32) for a in _data())
    tb = TruncatedBPTT(layer, 4, 6)
    for w in tb.run(x, _linear_loss(R)):
        assert all(g.dtype == np.float32 for g in w.grads.values())
        assert w.dx.dtype == np.float32
    assert all(s.dtype == np.float32 for s in _as_list(tb.state))


@cell_param
def test_training_with_an_output_layer_between_windows_lowers_the_loss(cell):
    """A linear read-out W (1, H) trained with the layer: loss_fn returns W's gradient as
    an extra gradient, the optimizer steps between windows; the task is to output the
    input's first feature delayed by one step, which needs the carried state."""
    rng = np.random.default_rng(3)
    layer = CLASSES[cell](1, 8, dtype=np.float64, seed=0)
    W = rng.standard_normal((1, 8)) * 0.1
    params = {**layer.params, "head": W}
    opt = Adam(params, lr=0.02)
    x = rng.standard_normal((200, 4, 1))
    target = np.concatenate([np.zeros((1, 4, 1)), x[:-1]])

    def loss_fn(output, lo, hi):
        err = output @ W.T - target[lo:hi]              # (n, B, 1)
        n = err.size
        return 0.5 * float(np.sum(err ** 2)) / n, (err @ W) / n, \
            {"head": np.einsum("tbo,tbh->oh", err, output) / n}

    tb = TruncatedBPTT(layer, 10)
    losses = []
    for _epoch in range(4):
        tb.reset()
        for w in tb.run(x, loss_fn):
            opt.step(w.grads)
            losses.append(w.loss)
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:20])


# ------------------------------------------------------------------ bad input

def test_bad_constructor_arguments():
    layer = _layer("rnn")
    with pytest.raises(ValueError, match="k1 must be >= 1"):
        TruncatedBPTT(layer, 0)
    with pytest.raises(TypeError, match="k1 must be an int"):
        TruncatedBPTT(layer, 2.0)
    with pytest.raises(TypeError, match="k2 must be an int"):
        TruncatedBPTT(layer, 2, True)
    with pytest.raises(ValueError, match="k2 must be >= k1"):
        TruncatedBPTT(layer, 5, 3)
    with pytest.raises(ValueError, match="unidirectional"):
        TruncatedBPTT(RNN(I, H, bidirectional=True), 3)
    with pytest.raises(TypeError, match="layer must be a fastbptt RNN, LSTM or GRU"):
        TruncatedBPTT(object(), 3)


def test_bad_run_arguments():
    layer = _layer("gru")
    x, R = _data()
    tb = TruncatedBPTT(layer, 3)
    loss = _linear_loss(R)
    with pytest.raises(ValueError, match="x must be 3-D"):
        next(tb.run(x[0], loss))
    with pytest.raises(ValueError, match="x must have 3 features"):
        next(tb.run(x[:, :, :2], loss))
    with pytest.raises(TypeError, match="mixed dtypes: x is float32"):
        next(tb.run(x.astype(np.float32), loss))
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        next(tb.run(x, "mse"))
    with pytest.raises(ValueError, match=r"resets must be a bool array of shape \(T,\)"):
        next(tb.run(x, loss, resets=np.zeros(T - 1, bool)))
    with pytest.raises(ValueError, match="resets must be a bool array"):
        next(tb.run(x, loss, resets=np.zeros(T, int)))
    list(tb.run(x, loss))
    with pytest.raises(ValueError, match="batch size 1 but the carried state has 2 rows"):
        next(tb.run(x[:, :1], _linear_loss(R[:, :1])))
    with pytest.raises(ValueError, match=r"rows as a bool mask must have shape \(B,\)"):
        tb.reset(np.array([True]))
    with pytest.raises(ValueError, match="rows as indices"):
        tb.reset([5])
    with pytest.raises(TypeError, match="rows must be None, a bool mask"):
        tb.reset(np.array([0.5]))


@pytest.mark.parametrize("bad, exc, needle", [
    (lambda out, lo, hi: 1.0, TypeError, r"must return \(loss, d_output\)"),
    (lambda out, lo, hi: (1.0, out[:-1].copy()), ValueError, "d_output must be an array shaped"),
    (lambda out, lo, hi: (1.0, [0.0]), ValueError, "d_output must be an array shaped"),
    (lambda out, lo, hi: (1.0, out.astype(np.float32)), TypeError, "layer's dtype float64"),
    (lambda out, lo, hi: (np.ones(2), out.copy()), TypeError, "loss must be a scalar"),
    (lambda out, lo, hi: (1.0, out.copy(), [1]), TypeError, "extra_grads must be a dict"),
    (lambda out, lo, hi: (1.0, out.copy(), {"weight_hh_l0": 0}), ValueError,
     r"\['weight_hh_l0'\] collide"),
])
def test_bad_loss_fn_returns(bad, exc, needle):
    x, _ = _data()
    tb = TruncatedBPTT(_layer("rnn"), 3)
    with pytest.raises(exc, match=needle):
        next(tb.run(x, bad))
