"""Fused output heads and losses: the compiled fastbptt.softmax_cross_entropy,
sigmoid_binary_cross_entropy and mean_squared_error against their reference twins
(fastbptt.reference), finite differences, hand-computed values, torch (when installed),
the kernel's block boundaries, many-to-one through the cells, bad input.
"""
import numpy as np
import pytest

import fastbptt
from _helpers import DTYPES, assert_close, raises_naming, relative_error, tol_for
from fastbptt import reference
from fastbptt.cells.spec import SPECS
from fastbptt.losses.heads import block_rows

LOSSES = ("softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error")
CE = "softmax_cross_entropy"
IMPLS = {"compiled": fastbptt, "reference": reference}

# Leading shapes of h (..., H): one position (h 1-D), N rows, empty, many-to-many
# time-major (T, B) and a 3-D lead.
LEADS = [(), (7,), (0,), (0, 3), (5, 3), (3, 4, 2)]
# How the positions are weighted: not at all, a bool mask, float weights, ignore_index
# (the cross-entropy only), and both (some positions ignored and the rest weighted).
WEIGHTINGS = ("none", "bool_mask", "float_mask", "ignore_index", "mask_and_ignore")

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
loss_param = pytest.mark.parametrize("loss", LOSSES)
reduction_param = pytest.mark.parametrize("reduction", ["mean", "sum"])
IGNORE = -100


def make_problem(loss, lead, H, V, dtype=np.float64, *, bias=True, weighting="none",
                 scale=1.0, seed=0):
    """(h, W, b, targets, kwargs) for one call, random and well scaled."""
    rng = np.random.default_rng(seed)
    h = (scale * rng.standard_normal(tuple(lead) + (H,))).astype(dtype)
    W = (rng.standard_normal((V, H)) / np.sqrt(max(H, 1))).astype(dtype)
    b = (0.5 * rng.standard_normal(V)).astype(dtype) if bias else None
    kwargs = {}
    if loss == CE:
        targets = rng.integers(0, V, lead)
    elif loss == "sigmoid_binary_cross_entropy":
        targets = rng.random(tuple(lead) + (V,)).astype(dtype)
        targets[..., ::3] = np.round(targets[..., ::3])   # some hard 0/1 labels
    else:
        targets = rng.standard_normal(tuple(lead) + (V,)).astype(dtype)
    if weighting in ("bool_mask", "mask_and_ignore"):
        kwargs["mask"] = rng.random(lead) < 0.7
    elif weighting == "float_mask":
        kwargs["mask"] = rng.random(lead) * (rng.random(lead) < 0.8)
    if weighting in ("ignore_index", "mask_and_ignore"):
        targets = np.where(rng.random(lead) < 0.3, IGNORE, targets)
        kwargs["ignore_index"] = IGNORE
    return h, W, b, targets, kwargs


def run(impl, loss, problem, **extra):
    h, W, b, targets, kwargs = problem
    return getattr(IMPLS[impl], loss)(h, W, b, targets, **kwargs, **extra)


def assert_same_result(result, expected, dtype, err_msg=""):
    (loss, grads), (loss_ref, grads_ref) = result, expected
    rtol, atol = tol_for(dtype)
    assert isinstance(loss, np.generic) and loss.dtype == dtype, f"{err_msg}: loss {loss!r}"
    assert_close(loss, loss_ref, rtol, atol, err_msg=f"{err_msg} loss")
    if grads_ref is None:
        assert grads is None
        return
    for name in ("dh", "dW", "db"):
        a, e = getattr(grads, name), getattr(grads_ref, name)
        if e is None:
            assert a is None, f"{err_msg}: {name} should be None"
            continue
        assert a.dtype == dtype, f"{err_msg}: {name} dtype {a.dtype}"
        assert_close(a, e, rtol, atol, err_msg=f"{err_msg} {name}")


# ------------------------------------------------------------------ compiled == reference

@reduction_param
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("lead", LEADS, ids=lambda s: "x".join(map(str, s)) or "scalar")
@dtype_param
@pytest.mark.parametrize("loss,weighting", [
    (loss, weighting) for loss in LOSSES for weighting in WEIGHTINGS
    if loss == CE or "ignore" not in weighting])   # ignore_index is the cross-entropy's
def test_compiled_matches_reference(loss, weighting, dtype, lead, bias, reduction):
    p = make_problem(loss, lead, 6, 5, dtype, bias=bias, weighting=weighting)
    expected = run("reference", loss, p, reduction=reduction)
    assert_same_result(run("compiled", loss, p, reduction=reduction), expected, dtype)
    assert expected[1].dh.shape == p[0].shape and expected[1].dW.shape == p[1].shape
    # compute_grad=False gives the same loss and no gradients
    loss_only = run("compiled", loss, p, reduction=reduction, compute_grad=False)
    assert loss_only[1] is None
    assert_close(loss_only[0], expected[0], *tol_for(dtype))


@dtype_param
@pytest.mark.parametrize("loss,H,V", [
    (loss, H, V) for loss in LOSSES for H, V in [(0, 4), (3, 0), (0, 0)]
    if loss != CE or V > 0])   # the softmax needs V >= 1 (test_bad_input)
def test_empty_sizes(loss, H, V, dtype):
    p = make_problem(loss, (3, 2), H, V, dtype)
    result = run("compiled", loss, p)
    assert_same_result(result, run("reference", loss, p), dtype)
    assert result[1].dh.shape == (3, 2, H) and result[1].dW.shape == (V, H)
    if V == 0:
        assert result[0] == 0
    else:   # y = b alone: the gradients of b are not zero
        assert np.any(result[1].db)


@pytest.mark.parametrize("N,V", [
    (None, 65),        # N = block - 1, block, block + 1, 2 block + 3 (filled in below)
    (None, 1),         # one output: the softmax is 1, the cross-entropy 0
    (None, 5000),      # a vocabulary of 5000: blocks of a few dozen rows
    (1, 5000),
], ids=["V65", "V1", "V5000", "N1_V5000"])
@dtype_param
@loss_param
def test_block_boundaries(loss, dtype, N, V):
    block = block_rows(V, dtype)
    sizes = [block - 1, block, block + 1, 2 * block + 3] if N is None else [N]
    for n in sizes:
        p = make_problem(loss, (n,), 8, V, dtype, weighting="float_mask", seed=n)
        assert_same_result(run("compiled", loss, p), run("reference", loss, p), dtype,
                           err_msg=f"N={n} V={V} block={block}")


@pytest.mark.parametrize("weighting", ["none", "float_mask"])
@dtype_param
@loss_param
def test_noncontiguous_inputs(loss, dtype, weighting):
    h, W, b, targets, kwargs = make_problem(loss, (4, 6), 5, 7, dtype, weighting=weighting)
    h_strided = np.asfortranarray(h[::-1])[::-1]     # Fortran order, negative stride
    W_strided = np.asfortranarray(W)
    b_strided = np.repeat(b, 2)[::2]
    targets_strided = np.repeat(targets, 2, axis=-1)[..., ::2]
    for a in (h_strided, b_strided, targets_strided):
        assert not a.flags.c_contiguous
    np.testing.assert_array_equal(h_strided, h)
    expected = run("reference", loss, (h, W, b, targets, kwargs))
    got = run("compiled", loss, (h_strided, W_strided, b_strided, targets_strided, kwargs))
    assert_same_result(got, expected, dtype)


@loss_param
def test_callers_arrays_unchanged(loss):
    p = make_problem(loss, (5, 3), 4, 6, np.float32, weighting="float_mask")
    before = [None if a is None else np.copy(a) for a in p[:4]] + [np.copy(p[4]["mask"])]
    for impl in IMPLS:
        run(impl, loss, p)
    after = list(p[:4]) + [p[4]["mask"]]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ finite differences

def _numerical_gradient(f, x, eps=1e-6):
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        values = []
        for sign in (1, -1):
            xp = x.copy()
            xp[idx] += sign * eps
            values.append(f(xp))
        grad[idx] = (values[0] - values[1]) / (2 * eps)
    return grad


@pytest.mark.parametrize("weighting", ["float_mask", "mask_and_ignore"])
@reduction_param
@pytest.mark.parametrize("impl", list(IMPLS))
@loss_param
def test_finite_differences(loss, impl, reduction, weighting):
    if loss != CE and "ignore" in weighting:
        weighting = "bool_mask"
    h, W, b, targets, kwargs = make_problem(loss, (3, 2), 4, 5, weighting=weighting, seed=3)
    fn = getattr(IMPLS[impl], loss)
    _, grads = fn(h, W, b, targets, reduction=reduction, **kwargs)
    numeric = {
        "dh": _numerical_gradient(lambda v: float(fn(v, W, b, targets, reduction=reduction,
                                                     **kwargs)[0]), h),
        "dW": _numerical_gradient(lambda v: float(fn(h, v, b, targets, reduction=reduction,
                                                     **kwargs)[0]), W),
        "db": _numerical_gradient(lambda v: float(fn(h, W, v, targets, reduction=reduction,
                                                     **kwargs)[0]), b),
    }
    for name, num in numeric.items():
        assert np.max(np.abs(num)) > 1e-3, f"{name}: degenerate test, zero gradient"
        err = relative_error(getattr(grads, name), num)
        assert err < 1e-7, f"{name}: relative error {err:.2e}"


# ------------------------------------------------------------------ hand-computed values

@pytest.mark.parametrize("impl", list(IMPLS))
def test_cross_entropy_by_hand(impl):
    # Two positions, three classes, W = I (so y = h), no bias:
    # y0 = (0, 0, 0), t0 = 2: l0 = log 3;   y1 = (log 2, 0, 0), t1 = 0: l1 = log 4 - log 2
    h = np.array([[0.0, 0.0, 0.0], [np.log(2), 0.0, 0.0]])
    W = np.eye(3)
    fn = getattr(IMPLS[impl], CE)
    loss, grads = fn(h, W, None, np.array([2, 0]), reduction="sum")
    assert loss == pytest.approx(np.log(3) + np.log(2), rel=1e-14)
    np.testing.assert_allclose(grads.dh, [[1 / 3, 1 / 3, -2 / 3], [-1 / 2, 1 / 4, 1 / 4]],
                               rtol=1e-14)
    assert grads.db is None
    # mean over counted positions: position 1 ignored
    loss, grads = fn(h, W, None, np.array([2, 7]), ignore_index=7)
    assert loss == pytest.approx(np.log(3), rel=1e-14)
    np.testing.assert_array_equal(grads.dh[1], 0)
    # weights: mean divides by their sum
    loss, _ = fn(h, W, None, np.array([2, 0]), mask=np.array([0.5, 1.5]))
    assert loss == pytest.approx((0.5 * np.log(3) + 1.5 * np.log(2)) / 2.0, rel=1e-14)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_bce_and_mse_by_hand(impl):
    h = np.array([[0.0, 2.0]])
    W = np.eye(2)
    b = np.array([0.0, -1.0])     # y = (0, 1)
    t = np.array([[1.0, 0.0]])
    lib = IMPLS[impl]
    # BCE: -log s(0) - log(1 - s(1)) = log 2 + log(1 + e); mean over 2 elements
    loss, grads = lib.sigmoid_binary_cross_entropy(h, W, b, t)
    assert loss == pytest.approx((np.log(2) + np.log1p(np.e)) / 2, rel=1e-14)
    s1 = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(grads.db, [(0.5 - 1) / 2, s1 / 2], rtol=1e-14)
    # MSE: ((0 - 1)^2 + (1 - 0)^2) / 2 = 1; dy = 2 (y - t) / 2
    loss, grads = lib.mean_squared_error(h, W, b, t)
    assert loss == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(grads.db, [-1.0, 1.0], rtol=1e-14)


@pytest.mark.parametrize("impl", list(IMPLS))
@dtype_param
@loss_param
def test_nothing_counted_gives_zero(loss, dtype, impl):
    p = make_problem(loss, (4, 2), 3, 5, dtype)
    h, W, b, targets, _ = p
    for reduction in ("mean", "sum"):
        value, grads = run(impl, loss, (h, W, b, targets, {"mask": np.zeros((4, 2), bool)}),
                           reduction=reduction)
        assert value == 0 and value.dtype == dtype and not np.isnan(value)
        for g in grads:
            assert g.dtype == dtype and not np.any(g), f"{reduction}: nonzero gradient"


@pytest.mark.parametrize("impl", list(IMPLS))
def test_cross_entropy_masked_or_ignored_targets_are_never_read(impl):
    # Padding positions may hold any target (-1 here). (Their h still enters dW = dY^T h
    # with a zero row of dY, so a NaN there would spread, as it does in torch.)
    h, W, b, targets, _ = make_problem(CE, (3, 2), 4, 5)
    padded = targets.copy()
    padded[2, 1] = -1
    mask = np.ones((3, 2), bool)
    mask[2, 1] = False
    loss, grads = getattr(IMPLS[impl], CE)(h, W, b, padded, mask=mask)
    keep = mask.reshape(-1)
    loss_kept, grads_kept = reference.softmax_cross_entropy(
        h.reshape(6, 4)[keep], W, b, targets.reshape(6)[keep])
    assert loss == pytest.approx(loss_kept, rel=1e-12)
    np.testing.assert_allclose(grads.dW, grads_kept.dW, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(grads.dh[2, 1], 0)


@pytest.mark.parametrize("impl", list(IMPLS))
@dtype_param
def test_large_logits_stay_finite(dtype, impl):
    # y = 1e4 * h with h one-hot: logits of 1e4 and 0, and -1e4 for the BCE/MSE heads.
    h = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]], dtype)
    W = (1e4 * np.eye(3)).astype(dtype)
    lib = IMPLS[impl]
    loss, grads = lib.softmax_cross_entropy(h, W, None, np.array([0, 2, 1]), reduction="sum")
    # row 0: target is the 1e4 logit, l = log(1 + 2 e^-1e4) = 0; row 1: l = 1e4;
    # row 2: logits (0, 0, -1e4), target 1: l = log 2
    assert np.isfinite(loss) and loss == pytest.approx(1e4 + np.log(2), rel=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)
    t = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype)
    loss, grads = lib.sigmoid_binary_cross_entropy(h, W, None, t, reduction="sum")
    # y = 1e4 with t = 0 costs 1e4 (row 1) and y = -1e4 with t = 1 costs 1e4 (row 2);
    # the zero logits cost log 2 each where their target is not 1/2: 4 with t = 0, 2 t = 1
    assert loss == pytest.approx(2e4 + 6 * np.log(2), rel=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)


@dtype_param
def test_bce_accuracy_over_the_logit_range(dtype):
    # One row whose V logits sweep [-60, 60] (W = 0, so y = b): the compiled series for
    # log1p(exp(-|y|)) and vmath's exp against float64 NumPy, element by element through
    # the gradient (sigmoid(y) - t) and in the summed loss.
    y = np.concatenate([np.linspace(-60, 60, 2001), [-1e-6, 0.0, 1e-6, 0.3, 1.7]]).astype(dtype)
    V = y.size
    t = np.random.default_rng(2).random((1, V)).astype(dtype)
    h, W = np.ones((1, 1), dtype), np.zeros((V, 1), dtype)
    loss, grads = fastbptt.sigmoid_binary_cross_entropy(h, W, y, t, reduction="sum")
    y64, t64 = y.astype(np.float64), t[0].astype(np.float64)
    exact = np.maximum(y64, 0) - y64 * t64 + np.log1p(np.exp(-np.abs(y64)))
    sigmoid = 0.5 * (1 + np.tanh(0.5 * y64))
    rtol = {np.float32: 1e-6, np.float64: 1e-14}[dtype]
    assert loss == pytest.approx(exact.sum(), rel=rtol)
    np.testing.assert_allclose(grads.db, sigmoid - t64, rtol=rtol * 10,
                               atol=np.finfo(dtype).eps)


@pytest.mark.parametrize("impl", list(IMPLS))
@loss_param
def test_nan_in_a_counted_row_gives_nan(loss, impl):
    h, W, b, targets, kwargs = make_problem(loss, (3, 2), 4, 5)
    h = h.copy()
    h[1, 0, 2] = np.nan
    value, grads = run(impl, loss, (h, W, b, targets, kwargs))
    assert np.isnan(value) and np.isnan(grads.dW).any()


# ------------------------------------------------------------------ torch

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_torch(loss, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, W, b, targets, kwargs = make_problem(
        loss, (6, 4), 5, 7, weighting="ignore_index" if loss == CE else "none", seed=11)
    th, tW, tb = (torch.tensor(a, requires_grad=True) for a in (h, W, b))
    y = th @ tW.T + tb
    if loss == CE:
        ref = F.cross_entropy(y.reshape(-1, 7), torch.tensor(targets.reshape(-1)),
                              ignore_index=IGNORE, reduction=reduction)
    elif loss == "sigmoid_binary_cross_entropy":
        ref = F.binary_cross_entropy_with_logits(y, torch.tensor(targets), reduction=reduction)
    else:
        ref = F.mse_loss(y, torch.tensor(targets), reduction=reduction)
    ref.backward()
    for impl in IMPLS:
        value, grads = getattr(IMPLS[impl], loss)(h, W, b, targets, reduction=reduction,
                                                  **kwargs)
        assert value == pytest.approx(ref.item(), rel=1e-12), impl
        for mine, theirs in zip(grads, (th.grad, tW.grad, tb.grad)):
            assert_close(mine, theirs.numpy(), 1e-10, err_msg=impl)


# ------------------------------------------------------------------ many-to-one

CELLS = tuple(SPECS)
GATES = {name: spec.gates for name, spec in SPECS.items()}


def _cell_problem(cell, T, B, I, H, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    return {
        "x": rng.standard_normal((T, B, I)).astype(dtype),
        "W_ih": (rng.standard_normal((G * H, I)) / np.sqrt(I)).astype(dtype),
        "W_hh": (0.6 * rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype),
        "b_ih": (0.3 * rng.standard_normal(G * H)).astype(dtype),
        "b_hh": (0.3 * rng.standard_normal(G * H)).astype(dtype),
    }


def _forward(lib, cell, p, lengths=None, batch_first=False):
    x = p["x"].transpose(1, 0, 2).copy() if batch_first else p["x"]
    weights = (p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"])
    states = (None,) * len(SPECS[cell].states)
    forward = getattr(lib, f"{cell}_forward")
    return forward(x, *states, *weights, batch_first=batch_first, lengths=lengths)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("cell", CELLS)
def test_last_step_equals_h_n(cell, impl, batch_first):
    lib = IMPLS[impl]
    p = _cell_problem(cell, 5, 4, 3, 6)
    lengths = np.array([5, 2, 1, 4])
    h, cache = _forward(lib, cell, p, lengths, batch_first)
    np.testing.assert_array_equal(lib.last_step(h, lengths, batch_first=batch_first),
                                  cache.h_n)
    h, cache = _forward(lib, cell, p, None, batch_first)
    last = lib.last_step(h, batch_first=batch_first)
    np.testing.assert_array_equal(last, cache.h_n)
    last[:] = 0                      # a new array, not a view of h
    assert np.any(h)


@pytest.mark.parametrize("with_lengths", [True, False], ids=["own_last_step", "last_step"])
@pytest.mark.parametrize("cell", CELLS)
def test_many_to_one_pipeline_matches_finite_differences(cell, with_lengths):
    # x -> cell -> each sequence's last state -> softmax head -> loss; backward through the
    # head, then the cell with dh_n = dL/dh_n. Checked against finite differences of the
    # whole pipeline in float64.
    T, B, I, H, V = 4, 3, 2, 3, 4
    p = _cell_problem(cell, T, B, I, H, seed=5)
    rng = np.random.default_rng(6)
    W = rng.standard_normal((V, H))
    b = rng.standard_normal(V)
    labels = np.array([1, 3, 0])
    lengths = np.array([4, 2, 1]) if with_lengths else None
    backward = getattr(fastbptt, f"{cell}_backward")

    def last(h, cache):
        # (b) each sequence's own last state is cache.h_n; (a) without lengths, the
        # output's last step h[-1]
        return cache.h_n if with_lengths else h[-1]

    def total_loss(**changes):
        q = dict(p, **{k: v for k, v in changes.items() if k in p})
        h, cache = _forward(fastbptt, cell, q, lengths)
        return float(fastbptt.softmax_cross_entropy(last(h, cache), changes.get("W", W), b,
                                                    labels)[0])

    h, cache = _forward(fastbptt, cell, p, lengths)
    _, head = fastbptt.softmax_cross_entropy(last(h, cache), W, b, labels)
    grads = backward(None, cache, dh_n=head.dh)
    checks = {"x": grads.dx, "W_ih": grads.dW_ih, "W_hh": grads.dW_hh, "W": head.dW}
    for name, analytic in checks.items():
        base = W if name == "W" else p[name]
        numeric = _numerical_gradient(lambda v: total_loss(**{name: v}), base)
        assert np.max(np.abs(numeric)) > 1e-3, f"{name}: degenerate test"
        err = relative_error(analytic, numeric)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"
    if with_lengths:
        # Nothing past a sequence's end reaches a gradient.
        np.testing.assert_array_equal(grads.dx[2:, 1], 0)
        np.testing.assert_array_equal(grads.dx[1:, 2], 0)


# ------------------------------------------------------------------ bad input

def _good(loss):
    h, W, b, targets, _ = make_problem(loss, (3, 2), 4, 5, np.float32)
    return dict(h=h, W=W, b=b, targets=targets)


_F32 = np.float32
BAD = [
    # (id, losses, changes, extra kwargs, exception, message regexes)
    ("int_h", LOSSES, dict(h=np.ones((3, 2, 4), np.int64)), {},
     TypeError, [r"\bh must have dtype"]),
    ("scalar_h", LOSSES, dict(h=np.float32(1)), {}, ValueError, [r"\bh must have at least one"]),
    ("mixed_W", LOSSES, dict(W=np.ones((5, 4))), {},
     TypeError, [r"mixed dtypes: W is float64", "h is float32"]),
    ("mixed_b", LOSSES, dict(b=np.ones(5)), {}, TypeError, [r"mixed dtypes: b is float64"]),
    ("W_1d", LOSSES, dict(W=np.ones(4, _F32)), {}, ValueError, [r"W must have shape \(V, H\)"]),
    ("W_wrong_H", LOSSES, dict(W=np.ones((5, 3), _F32)), {},
     ValueError, [r"W must have shape \(V, H\) with H = 4"]),
    ("b_wrong", LOSSES, dict(b=np.ones(4, _F32)), {},
     ValueError, [r"b must have shape \(V,\) = \(5,\)"]),
    ("bad_reduction", LOSSES, {}, dict(reduction="avg"),
     ValueError, [r"reduction must be 'mean' or 'sum'", "avg"]),
    ("none_reduction", LOSSES, {}, dict(reduction=None), ValueError, [r"reduction must be"]),
    ("mask_shape", LOSSES, {}, dict(mask=np.ones((2, 3), bool)),
     ValueError, [r"mask must have shape h.shape\[:-1\] = \(3, 2\)"]),
    ("mask_negative", LOSSES, {}, dict(mask=-np.ones((3, 2))),
     ValueError, [r"mask must hold finite weights >= 0"]),
    ("mask_str", LOSSES, {}, dict(mask=np.full((3, 2), "a")),
     TypeError, [r"mask must be bool or real"]),
    ("compute_grad", LOSSES, {}, dict(compute_grad="yes"),
     TypeError, [r"compute_grad must be True or False"]),
    ("ce_float_targets", (CE,), dict(targets=np.zeros((3, 2), _F32)), {},
     TypeError, [r"targets must have an integer dtype"]),
    ("ce_bool_targets", (CE,), dict(targets=np.zeros((3, 2), bool)), {},
     TypeError, [r"targets must have an integer dtype"]),
    ("ce_targets_shape", (CE,), dict(targets=np.zeros(6, int)), {},
     ValueError, [r"targets must have shape h.shape\[:-1\] = \(3, 2\)"]),
    ("ce_targets_high", (CE,), dict(targets=np.full((3, 2), 5)), {},
     ValueError, [r"targets must lie in \[0, V\) = \[0, 5\)", r"got 5 at position \(0, 0\)"]),
    ("ce_targets_negative", (CE,), dict(targets=np.array([[0, 1], [2, -1], [0, 0]])), {},
     ValueError, [r"targets must lie in \[0, V\)", r"-1 at position \(1, 1\)"]),
    ("ce_targets_ignored_other", (CE,), dict(targets=np.array([[0, 1], [2, -1], [0, 0]])),
     dict(ignore_index=-100),
     ValueError, [r"targets must lie in"]),
    ("ce_ignore_index_float", (CE,), {}, dict(ignore_index=1.5),
     TypeError, [r"ignore_index must be an int"]),
    ("ce_no_classes", (CE,), dict(W=np.ones((0, 4), _F32), b=None), {},
     ValueError, [r"W must have at least one row"]),
    ("bce_int_targets", LOSSES[1:], dict(targets=np.zeros((3, 2, 5), np.int64)), {},
     TypeError, [r"targets must have dtype float32 or float64"]),
    ("bce_mixed_targets", LOSSES[1:], dict(targets=np.zeros((3, 2, 5))), {},
     TypeError, [r"mixed dtypes: targets is float64"]),
    ("bce_targets_shape", LOSSES[1:], dict(targets=np.zeros((3, 2), _F32)), {},
     ValueError, [r"targets must have shape h.shape\[:-1\] \+ \(V,\) = \(3, 2, 5\)"]),
    ("bce_targets_range", LOSSES[1:2], dict(targets=np.full((3, 2, 5), 1.5, _F32)), {},
     ValueError, [r"targets of the binary cross-entropy must lie in \[0, 1\]"]),
    ("bce_ignore_index", LOSSES[1:], {}, dict(ignore_index=0),
     TypeError, [r"unexpected keyword argument 'ignore_index'"]),
]


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input(case, impl):
    _, losses, changes, extra, exc, needles = case
    for loss in losses:
        args = dict(_good(loss), **changes)
        fn = getattr(IMPLS[impl], loss)
        raises_naming(exc, needles, lambda: fn(args["h"], args["W"], args["b"],
                                               args["targets"], **extra))


@pytest.mark.parametrize("impl", list(IMPLS))
def test_masked_targets_may_be_out_of_range(impl):
    h, W, b, targets, _ = make_problem(CE, (3, 2), 4, 5)
    targets = targets.copy()
    targets[0, 1] = 99
    mask = np.ones((3, 2))
    mask[0, 1] = 0
    loss, _ = getattr(IMPLS[impl], CE)(h, W, b, targets, mask=mask)
    assert np.isfinite(loss)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_last_step_bad_input(impl):
    last_step = IMPLS[impl].last_step
    h = np.zeros((4, 3, 2))
    raises_naming(ValueError, [r"h must be 3-D"], lambda: last_step(h[0]))
    raises_naming(ValueError, [r"lengths must have shape \(B,\) = \(3,\)"],
                  lambda: last_step(h, np.array([1, 2])))
    raises_naming(ValueError, [r"lengths must lie in \[1, T\] = \[1, 4\]", "length 0"],
                  lambda: last_step(h, np.array([0, 2, 3])))
    raises_naming(ValueError, [r"lengths must lie in \[1, T\] = \[1, 3\]"],
                  lambda: last_step(h, np.array([4, 2, 3, 1]), batch_first=True))
    raises_naming(TypeError, [r"lengths must have an integer dtype"],
                  lambda: last_step(h, np.array([1.0, 2.0, 3.0])))
    raises_naming(ValueError, [r"no last step"], lambda: last_step(np.zeros((0, 3, 2))))
