"""The NaN/Inf policy (docs/guarantees.md):

1. By default nothing is scanned: NaN and Inf flow through IEEE arithmetic into the
   outputs and gradients they feed, the same in the compiled code and the reference.
   A NaN in one sequence never reaches another sequence's states.
2. check_finite=True (SciPy's keyword) makes every cell function and layer forward raise
   ValueError naming the first argument that holds NaN or Inf, before any work.
3. Steps past a sequence's length never affect a result: NaN or Inf there (in x or in
   dh) changes nothing, and check_finite does not look at them.
"""
import numpy as np
import pytest

import fastbptt
from _cells import cell_problem
from _registry import Case
from fastbptt import reference
from fastbptt.cells.spec import CELLS

# NaN on purpose: NumPy's "invalid value" warnings from the reference are expected here.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

IMPLS = {"compiled": fastbptt, "reference": reference}


def _problem(cell, batch_first, dtype=np.float64, T=5, B=3, I=4, H=3, seed=0):
    return cell_problem(cell, Case(T=T, B=B, I=I, H=H, dtype=dtype, batch_first=batch_first,
                                   seed=seed))


def _run(cell, impl, a, up, batch_first, lengths=None, check_finite=False, dh=True):
    mod = IMPLS[impl]
    h, cache = getattr(mod, f"{cell}_forward")(**a, batch_first=batch_first,
                                                lengths=lengths, check_finite=check_finite)
    kw = {k: v for k, v in up.items() if k != "dh"}
    grads = getattr(mod, f"{cell}_backward")(up["dh"] if dh else None, cache, **kw,
                                             check_finite=check_finite)
    return h, cache, grads


def _pad(a, lengths, batch_first, value):
    """a (T, B, F) or (B, T, F) with value at every step past each sequence's length."""
    a = a.copy()
    for b, n in enumerate(lengths):
        if batch_first:
            a[b, n:] = value
        else:
            a[n:, b] = value
    return a


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padding_never_affects_results(impl, cell, batch_first, fill, dtype):
    """NaN/Inf in x and dh past the lengths: every output and gradient is bit-identical
    to zero padding. (Before the fix, 0 * NaN in the dA^T X GEMM made dW_ih NaN.)"""
    lengths = np.array([5, 2, 0])
    a, up = _problem(cell, batch_first, dtype)
    clean_a = {**a, "x": _pad(a["x"], lengths, batch_first, 0)}
    clean_up = {**up, "dh": _pad(up["dh"], lengths, batch_first, 0)}
    dirty_a = {**a, "x": _pad(a["x"], lengths, batch_first, fill)}
    dirty_up = {**up, "dh": _pad(up["dh"], lengths, batch_first, fill)}
    h0, c0, g0 = _run(cell, impl, clean_a, clean_up, batch_first, lengths)
    h1, c1, g1 = _run(cell, impl, dirty_a, dirty_up, batch_first, lengths,
                      check_finite=True)   # padding is not checked either
    np.testing.assert_array_equal(h1, h0)
    np.testing.assert_array_equal(c1.h_n, c0.h_n)
    for name, v in g0._asdict().items():
        if v is not None:
            assert np.isfinite(getattr(g1, name)).all(), name
            np.testing.assert_array_equal(getattr(g1, name), v, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("where", ["x", "h0", "dh"])
def test_nan_propagates_by_default_alike_in_both_implementations(cell, where):
    """One NaN in sequence 0: no error; h of sequence 0 turns NaN from that step on, the
    other sequences' states stay finite, and the compiled code and the reference put NaN
    in exactly the same places of every result."""
    results = {}
    for impl in IMPLS:
        a, up = _problem(cell, batch_first=False)
        if where == "dh":
            up["dh"][2, 0, 1] = np.nan
        else:
            a[where][(1, 0, 0) if where == "x" else (0, 1)] = np.nan
        results[impl] = _run(cell, impl, a, up, batch_first=False)
    (hc, _, gc), (hr, _, gr) = results["compiled"], results["reference"]
    np.testing.assert_array_equal(np.isnan(hc), np.isnan(hr))
    if where != "dh":
        start = 1 if where == "x" else 0
        assert np.isnan(hc[start:, 0]).all()
        assert np.isfinite(hc[:, 1:]).all()
    else:
        assert np.isfinite(hc).all()
    for name, v in gr._asdict().items():
        if v is not None:
            np.testing.assert_array_equal(np.isnan(getattr(gc, name)), np.isnan(v), name)
    assert np.isnan(gc.dW_hh).any()


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_check_finite_names_the_forward_argument(impl, cell, value):
    a, up = _problem(cell, batch_first=False)
    for name in a:
        bad = {k: v.copy() for k, v in a.items()}
        bad[name].flat[bad[name].size // 2] = value
        forward = getattr(IMPLS[impl], f"{cell}_forward")
        with pytest.raises(ValueError, match=rf"^{name} must not contain NaN or Inf "
                                             r"\(check_finite=True\), found 1"):
            forward(**bad, check_finite=True)
        forward(**bad)   # the default: no check, no error


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
def test_check_finite_names_the_backward_argument(impl, cell):
    a, up = _problem(cell, batch_first=True)
    mod = IMPLS[impl]
    _, cache = getattr(mod, f"{cell}_forward")(**a, batch_first=True)
    backward = getattr(mod, f"{cell}_backward")
    for name in up:
        bad = {k: v.copy() for k, v in up.items()}
        bad[name].flat[0] = -np.inf
        dh = bad.pop("dh")
        with pytest.raises(ValueError, match=rf"^{name} must not contain NaN or Inf"):
            backward(dh, cache, **bad, check_finite=True)
        backward(dh, cache, **bad)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("value", [1, "yes", None, np.array([True])])
def test_check_finite_must_be_a_bool(impl, cell, value):
    a, up = _problem(cell, batch_first=False)
    forward = getattr(IMPLS[impl], f"{cell}_forward")
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        forward(**a, check_finite=value)
    _, cache = forward(**a)
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        getattr(IMPLS[impl], f"{cell}_backward")(up["dh"], cache, check_finite=value)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_layer_check_finite(backend, cls):
    layer = getattr(fastbptt, cls)(3, 2, num_layers=2, bidirectional=True,
                                   dtype=np.float64, seed=0, backend=backend)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    lengths = np.array([4, 2])
    x[3, 1] = np.nan   # padding: allowed even with check_finite
    ref_out, _ = layer.forward(np.where(np.isnan(x), 0, x), lengths=lengths)
    out, _ = layer.forward(x, lengths=lengths, check_finite=True)
    np.testing.assert_array_equal(out, ref_out)
    x[1, 1, 2] = np.inf
    with pytest.raises(ValueError, match="^x must not contain NaN or Inf"):
        layer.forward(x, lengths=lengths, check_finite=True)
    key = "weight_hh_l1_reverse"
    layer.params[key][0, 0] = np.nan
    with pytest.raises(ValueError, match=rf"params\['{key}'\] must not contain NaN"):
        layer.forward(np.zeros((4, 2, 3)), check_finite=True)
    out, _ = layer.forward(np.zeros((4, 2, 3)))   # unchecked: NaN flows through
    assert np.isnan(out).any()
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        layer.forward(np.zeros((4, 2, 3)), check_finite="no")
