"""The backend switch (fastbptt.runtime.backend): set_backend / get_backend / use_backend, the
public cell functions dispatching on it, backward functions dispatching on their cache's
type, and the layer classes following it unless pinned."""
import threading

import numpy as np
import pytest

import fastbptt
from fastbptt import reference
from fastbptt.cells.spec import SPECS
from fastbptt.runtime import backend as _backend

T_, B_, I_, H_ = 5, 3, 4, 6
CELLS = {name: spec.gates for name, spec in SPECS.items()}


@pytest.fixture(autouse=True)
def _restore_default():
    before = fastbptt.get_backend()
    yield
    fastbptt.set_backend(before)


def _problem(cell, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    G = CELLS[cell]
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    W = [rng.standard_normal(s).astype(dtype) * 0.4
         for s in ((G * H_, I_), (G * H_, H_), (G * H_,), (G * H_,))]
    states = (None,) * len(SPECS[cell].states)
    dh = rng.standard_normal((T_, B_, H_)).astype(dtype)
    return (x, *states, *W), dh


def _call(cell, backend_fn, args, dh):
    forward = getattr(backend_fn, f"{cell}_forward")
    backward = getattr(backend_fn, f"{cell}_backward")
    h, cache = forward(*args)
    return h, cache, backward(dh, cache)


def _assert_same(a, b, exact):
    for u, v in zip(a, b):
        if u is None:
            assert v is None
        elif exact:
            np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ the switch itself

def test_default_is_compiled():
    assert fastbptt.get_backend() == "compiled"


def test_set_backend_and_use_backend_nest_and_restore():
    fastbptt.set_backend("reference")
    assert fastbptt.get_backend() == "reference"
    with fastbptt.use_backend("compiled") as name:
        assert name == "compiled" and fastbptt.get_backend() == "compiled"
        with fastbptt.use_backend("reference"):
            assert fastbptt.get_backend() == "reference"
        assert fastbptt.get_backend() == "compiled"
        fastbptt.set_backend("reference")           # the default changes under the override
        assert fastbptt.get_backend() == "compiled"
    assert fastbptt.get_backend() == "reference"
    fastbptt.set_backend("compiled")
    assert fastbptt.get_backend() == "compiled"


def test_use_backend_restores_after_an_exception():
    with pytest.raises(RuntimeError):
        with fastbptt.use_backend("reference"):
            raise RuntimeError("boom")
    assert fastbptt.get_backend() == "compiled"


@pytest.mark.parametrize("bad", ["fast", "Compiled", None, 1])
def test_bad_backend_names_are_refused(bad):
    with pytest.raises(ValueError, match="backend"):
        fastbptt.set_backend(bad)
    with pytest.raises(ValueError, match="backend"):
        with fastbptt.use_backend(bad):
            pass
    assert fastbptt.get_backend() == "compiled"


def test_override_is_private_to_its_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait(5)
        seen["other"] = fastbptt.get_backend()   # the global default, not main's override
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with fastbptt.use_backend("reference"):
        inside.set()
        release.wait(5)
        seen["main"] = fastbptt.get_backend()
    thread.join()
    assert seen == {"main": "reference", "other": "compiled"}


def test_a_new_thread_sees_the_global_default():
    fastbptt.set_backend("reference")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(fastbptt.get_backend()))
    thread.start()
    thread.join()
    assert seen == ["reference"]


# ------------------------------------------------------------------ the cell functions

@pytest.mark.parametrize("cell", list(CELLS))
def test_public_functions_follow_the_switch(cell):
    args, dh = _problem(cell)
    with fastbptt.use_backend("reference"):
        h, cache, grads = _call(cell, fastbptt, args, dh)
    assert _backend.is_reference_cache(cache)
    h_ref, _, grads_ref = _call(cell, reference, args, dh)
    _assert_same((h, *grads), (h_ref, *grads_ref), exact=True)
    h_c, cache_c, grads_c = _call(cell, fastbptt, args, dh)
    assert not _backend.is_reference_cache(cache_c)
    _assert_same((h_c, *grads_c), (h_ref, *grads_ref), exact=False)


@pytest.mark.parametrize("cell", list(CELLS))
def test_backward_goes_where_its_cache_came_from(cell):
    args, dh = _problem(cell, seed=1)
    forward = getattr(fastbptt, f"{cell}_forward")
    backward = getattr(fastbptt, f"{cell}_backward")
    with fastbptt.use_backend("reference"):
        _, ref_cache = forward(*args)
        _, compiled_cache = _backend.implementation(f"{cell}_forward", "compiled")(*args)
        from_compiled = backward(dh, compiled_cache)   # compiled despite the switch
    from_reference = backward(dh, ref_cache)             # reference despite the switch
    want_ref = getattr(reference, f"{cell}_backward")(dh, ref_cache)
    want_compiled = _backend.implementation(f"{cell}_backward", "compiled")(dh, compiled_cache)
    _assert_same(from_reference, want_ref, exact=True)
    _assert_same(from_compiled, want_compiled, exact=True)
    # the cache passed by keyword dispatches the same way
    _assert_same(backward(dh, cache=ref_cache), want_ref, exact=True)


def test_a_wrong_cache_is_still_refused_by_name():
    args, dh = _problem("rnn")
    _, rnn_ref_cache = reference.rnn_forward(*args)
    with pytest.raises(TypeError, match="cache"):
        fastbptt.lstm_backward(dh, rnn_ref_cache)
    with pytest.raises(TypeError, match="cache"):
        fastbptt.rnn_backward(dh, {"not": "a cache"})


def test_dispatch_hooks_a_new_function_with_one_decorator(monkeypatch):
    calls = []
    monkeypatch.setattr(reference, "twice", lambda a: ("reference", 2 * a), raising=False)

    @_backend.dispatch("twice")
    def twice(a):
        """Doubles a."""
        return "compiled", 2 * a

    assert twice.__doc__ == "Doubles a." and twice.__name__ == "twice"
    assert twice(3) == ("compiled", 6)
    with fastbptt.use_backend("reference"):
        calls.append(twice(3))
        assert _backend.implementation("twice", "compiled")(1) == ("compiled", 2)
    assert calls == [("reference", 6)]


# ------------------------------------------------------------------ layers

@pytest.mark.parametrize("cls", [fastbptt.RNN, fastbptt.LSTM, fastbptt.GRU])
def test_layers_follow_the_switch_unless_pinned(cls):
    x = np.random.default_rng(2).standard_normal((T_, B_, I_))
    follow = cls(I_, H_, dtype=np.float64, seed=0)
    pinned = cls(I_, H_, dtype=np.float64, seed=0, backend="compiled")
    assert follow.backend is None
    with fastbptt.use_backend("reference"):
        out_follow, _ = follow.forward(x)
        out_pinned, _ = pinned.forward(x)
    assert _backend.is_reference_cache(follow.tape.caches[0])
    assert not _backend.is_reference_cache(pinned.tape.caches[0])
    # backward outside the block still runs where forward ran (the cache decides)
    dx, grads = follow.backward(np.ones_like(out_follow))
    with fastbptt.use_backend("reference"):
        dx_p, grads_p = pinned.backward(np.ones_like(out_pinned))
    np.testing.assert_allclose(out_follow, out_pinned, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, dx_p, rtol=1e-9, atol=1e-12)
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_p[key], rtol=1e-9, atol=1e-12)


def test_layer_backend_is_validated():
    with pytest.raises(ValueError, match="backend"):
        fastbptt.RNN(2, 3, backend="fast")
    layer = fastbptt.RNN(2, 3)
    layer.backend = "reference"
    layer.backend = None
    assert layer.backend is None


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy",
                                  "mean_squared_error"])
def test_losses_follow_the_switch(name, monkeypatch):
    rng = np.random.default_rng(0)
    h, W, b = rng.standard_normal((5, 3, 4)), rng.standard_normal((6, 4)), np.zeros(6)
    targets = (rng.integers(0, 6, (5, 3)) if name == "softmax_cross_entropy"
               else rng.uniform(size=(5, 3, 6)))
    calls = []
    real = getattr(fastbptt.reference, name)
    monkeypatch.setattr(fastbptt.reference, name,
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    compiled_loss, _ = getattr(fastbptt, name)(h, W, b, targets)
    assert calls == []
    with fastbptt.use_backend("reference"):
        reference_loss, _ = getattr(fastbptt, name)(h, W, b, targets)
    assert calls == [1]
    assert reference_loss == pytest.approx(compiled_loss, rel=1e-12)
