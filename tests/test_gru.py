"""GRU: the compiled fastbptt.cells.gru against its reference twin (fastbptt.reference.gru),
finite differences, a hand-computed case, layouts, strides, empty sizes, variable lengths,
bad input, and (when installed) torch.nn.GRU.
"""
import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pytest

from _helpers import (
    BAD_LENGTHS,
    DTYPES,
    GRAD_NAMES,
    assert_close,
    assert_grads_close,
    assert_matches_finite_differences,
    assert_same_result,
    raises_naming,
    tol_for,
)
from fastbptt.cells import gru as compiled_gru
from fastbptt.reference import gru as reference_gru

IMPLS = {
    "compiled": (compiled_gru.gru_forward, compiled_gru.gru_backward),
    "reference": (reference_gru.gru_forward, reference_gru.gru_backward),
}
ARG_NAMES = ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh")   # in GRAD_NAMES' order

# (T, B, I, H). Chosen for the kernel's paths as well as the edge sizes:
#   B == 1: GEMV per step;  1 < B < H: the transposed per-step GEMM;  otherwise plain GEMM.
#   batch-first dW_hh: one GEMM (B == 1), one per step (T <= B), one per sequence (T > B).
SHAPES = [
    (1, 1, 1, 1),      # every size 1
    (1, 3, 5, 2),      # one step, B > H
    (7, 1, 3, 5),      # B = 1 (gemv), I != H
    (5, 4, 6, 3),      # B > H, batch-first T > B
    (13, 2, 1, 9),     # I = 1, transposed step
    (3, 6, 4, 5),      # batch-first T <= B
    (6, 5, 3, 5),      # B == H
    (4, 9, 3, 19),     # transposed step: 8 x 8 tiles of transpose.h and both edges
    (3, 16, 5, 24),    # transposed step: whole tiles only
    (300, 2, 8, 8),    # long sequence
]

MODES = {                       # which upstream gradients backward gets
    "many_to_many": dict(dh=True, dh_n=False),
    "many_to_one": dict(dh=False, dh_n=True),
    "both": dict(dh=True, dh_n=True),
}

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
layout_param = pytest.mark.parametrize("batch_first", [False, True],
                                       ids=["time_major", "batch_first"])
impl_param = pytest.mark.parametrize("impl", list(IMPLS))
mode_param = pytest.mark.parametrize("mode", list(MODES))


def shape_param(shapes):
    return pytest.mark.parametrize("shape", shapes, ids=lambda s: "x".join(map(str, s)))


@dataclass
class GRUProblem:
    """One GRU problem: forward inputs and the upstream gradients."""
    x: np.ndarray
    h0: Optional[np.ndarray]
    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: Optional[np.ndarray]
    b_hh: Optional[np.ndarray]
    dh: Optional[np.ndarray]        # like h, or None (many-to-one)
    dh_n: Optional[np.ndarray]      # (B, H) or None
    batch_first: bool = False
    lengths: Optional[np.ndarray] = None

    def forward_args(self):
        return (self.x, self.h0, self.W_ih, self.W_hh, self.b_ih, self.b_hh)

    def forward_kwargs(self):
        return {"batch_first": self.batch_first, "lengths": self.lengths}

    def run(self, impl="compiled"):
        """(h, h_n, grads) from one implementation."""
        forward, backward = IMPLS[impl]
        h, cache = forward(*self.forward_args(), **self.forward_kwargs())
        return h, cache.h_n, backward(self.dh, cache, dh_n=self.dh_n)

    def loss(self, impl):
        """L = sum(h * dh) + sum(h_n * dh_n), the scalar whose gradient backward returns."""
        forward, _ = IMPLS[impl]
        h, cache = forward(*self.forward_args(), **self.forward_kwargs())
        total = 0.0
        if self.dh is not None:
            total += float(np.sum(h * self.dh))
        if self.dh_n is not None:
            total += float(np.sum(cache.h_n * self.dh_n))
        return total

    def arrays(self):
        """Every array argument by name (None left out)."""
        names = ARG_NAMES + ("dh", "dh_n")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def with_(self, **changes):
        return replace(self, **changes)


def make_problem(T, B, I, H, dtype=np.float64, *, batch_first=False, bias=True, h0=True,
                 dh=True, dh_n=True, lengths=None, seed=0):
    """A random, well-conditioned problem (W_hh's blocks scaled to spectral radius about
    0.6, biases and inputs of order 1, so every gate is away from saturation)."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    out_shape = (B, T, H) if batch_first else (T, B, H)
    return GRUProblem(
        x=rand(B, T, I) if batch_first else rand(T, B, I),
        h0=rand(B, H, scale=0.5) if h0 else None,
        W_ih=rand(3 * H, I, scale=1.0 / np.sqrt(max(I, 1))),
        W_hh=rand(3 * H, H, scale=0.6 / np.sqrt(max(H, 1))),
        b_ih=rand(3 * H, scale=0.3) if bias else None,
        b_hh=rand(3 * H, scale=0.3) if bias else None,
        dh=rand(*out_shape) if dh else None,
        dh_n=rand(B, H) if dh_n else None,
        batch_first=batch_first,
        lengths=None if lengths is None else np.asarray(lengths),
    )


def _loss(p, impl):
    return p.loss(impl)


def _compare_to_reference(p):
    h, h_n, grads = p.run("compiled")
    h_r, h_n_r, grads_r = p.run("reference")
    rtol, atol = tol_for(p.x.dtype)
    assert h.dtype == h_n.dtype == p.x.dtype
    assert_close(h, h_r, rtol, atol, err_msg="h")
    assert_close(h_n, h_n_r, rtol, atol, err_msg="h_n")
    assert_grads_close(grads, grads_r, rtol, atol)


def _time_slice(a, batch_first, t):
    return a[:, t] if batch_first else a[t]


# ------------------------------------------------------------------ compiled == reference

@mode_param
@layout_param
@dtype_param
@shape_param(SHAPES)
def test_matches_reference(shape, dtype, batch_first, mode):
    p = make_problem(*shape, dtype, batch_first=batch_first, **MODES[mode], seed=sum(shape))
    _compare_to_reference(p)


@pytest.mark.parametrize("h0", [True, False], ids=["h0", "h0_None"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@shape_param([(1, 1, 1, 1), (7, 1, 3, 5), (5, 4, 6, 3), (4, 9, 3, 19)])
def test_matches_reference_bias_and_h0(shape, dtype, batch_first, bias, h0):
    p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, h0=h0,
                     seed=1 + sum(shape))
    _compare_to_reference(p)
    _, _, grads = p.run("compiled")
    if not bias:
        assert grads.db_ih is None and grads.db_hh is None
    else:
        # b_hn sits inside the reset gate's product: the n blocks differ, r and z agree
        H = shape[3]
        np.testing.assert_array_equal(grads.db_ih[:2 * H], grads.db_hh[:2 * H])
        assert not np.allclose(grads.db_ih[2 * H:], grads.db_hh[2 * H:])


# ------------------------------------------------------------------ finite differences

FD_SHAPES = [(4, 3, 2, 3), (3, 1, 2, 4), (5, 2, 3, 4)]   # plain GEMM, GEMV, transposed


@impl_param
@layout_param
@shape_param(FD_SHAPES)
def test_gradients_match_finite_differences(shape, batch_first, impl):
    p = make_problem(*shape, np.float64, batch_first=batch_first, seed=2)
    _, _, grads = p.run(impl)
    assert_matches_finite_differences(grads, p, impl, zip(GRAD_NAMES, ARG_NAMES), _loss)


@impl_param
@layout_param
@pytest.mark.parametrize("mode", ["many_to_many", "both"])
def test_lengths_finite_differences(mode, batch_first, impl):
    p = make_problem(3, 4, 2, 3, np.float64, batch_first=batch_first, lengths=[3, 0, 1, 2],
                     seed=3, **MODES[mode])
    _, _, grads = p.run(impl)
    assert_matches_finite_differences(grads, p, impl, zip(GRAD_NAMES, ARG_NAMES), _loss)


# ------------------------------------------------------------------ dtypes

@impl_param
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@shape_param([(4, 3, 2, 5), (3, 1, 4, 2), (0, 2, 3, 4), (3, 2, 0, 4)])
def test_dtype_in_is_dtype_out(shape, dtype, batch_first, bias, impl):
    for lengths in (None, np.minimum(np.arange(shape[1]), shape[0])):
        for mode in MODES.values():
            p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, h0=False,
                             lengths=lengths, **mode)
            h, h_n, grads = p.run(impl)
            assert h.dtype == h_n.dtype == np.dtype(dtype)
            for name in GRAD_NAMES:
                g = getattr(grads, name)
                if name.startswith("db") and not bias:
                    assert g is None
                else:
                    assert g.dtype == np.dtype(dtype), f"{name} is {g.dtype}"


# ------------------------------------------------------------------ a case by hand

def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


@impl_param
@dtype_param
def test_hand_computed(dtype, impl):
    """T = 2, B = I = H = 1, written out step by step from the equations."""
    w_ih = [0.5, -0.25, 0.75]        # r, z, n
    w_hh = [-0.5, 0.375, 0.625]
    b_ih = [0.125, -0.125, 0.25]
    b_hh = [0.25, 0.0625, -0.375]
    h0, xs = 0.375, [1.0, -2.0]
    gs, gn = [0.5, -1.0], 2.0        # dL/dh_1, dL/dh_2 from the loss; dL/dh_2 from outside

    steps, h = [], h0
    for x in xs:
        P = [w * x + b for w, b in zip(w_ih, b_ih)]
        R = [w * h + b for w, b in zip(w_hh, b_hh)]
        r, z = _sigmoid(P[0] + R[0]), _sigmoid(P[1] + R[1])
        n = math.tanh(P[2] + r * R[2])
        steps.append(dict(x=x, h_prev=h, r=r, z=z, n=n, R_n=R[2]))
        h = (1 - z) * n + z * h
        steps[-1]["h"] = h
    dx, dW_ih, dW_hh = [0.0, 0.0], [0.0] * 3, [0.0] * 3
    db_ih, db_hh = [0.0] * 3, [0.0] * 3
    g = gn
    for t in (1, 0):
        s = steps[t]
        g += gs[t]
        da_n = g * (1 - s["z"]) * (1 - s["n"] ** 2)
        da_r = da_n * s["R_n"] * s["r"] * (1 - s["r"])
        da_z = g * (s["h_prev"] - s["n"]) * s["z"] * (1 - s["z"])
        dP = [da_r, da_z, da_n]
        dR = [da_r, da_z, da_n * s["r"]]
        dx[t] = sum(d * w for d, w in zip(dP, w_ih))
        for k in range(3):
            dW_ih[k] += dP[k] * s["x"]
            dW_hh[k] += dR[k] * s["h_prev"]
            db_ih[k] += dP[k]
            db_hh[k] += dR[k]
        g = sum(d * w for d, w in zip(dR, w_hh)) + g * s["z"]
    expected = {"dx": [[[dx[0]]], [[dx[1]]]], "dh0": [[g]], "dW_ih": [[w] for w in dW_ih],
                "dW_hh": [[w] for w in dW_hh], "db_ih": db_ih, "db_hh": db_hh}

    def arr(v):
        return np.array(v, dtype)

    forward, backward = IMPLS[impl]
    h, cache = forward(arr([[[xs[0]]], [[xs[1]]]]), arr([[h0]]), arr([[w] for w in w_ih]),
                       arr([[w] for w in w_hh]), arr(b_ih), arr(b_hh))
    grads = backward(arr([[[gs[0]]], [[gs[1]]]]), cache, dh_n=arr([[gn]]))
    # float32: dx[1] is a small difference of order-1 terms, so an absolute part too
    rtol, atol = (1e-6, 1e-6) if dtype == np.float32 else (1e-13, 1e-14)
    assert_close(h, [[[steps[0]["h"]]], [[steps[1]["h"]]]], rtol, atol, err_msg="h")
    for name, value in expected.items():
        assert_close(getattr(grads, name), value, rtol, atol, err_msg=name)


# ------------------------------------------------------------------ layouts

@impl_param
@mode_param
@dtype_param
@shape_param([(1, 1, 1, 1), (7, 1, 3, 5), (5, 4, 6, 3), (3, 6, 4, 5), (4, 9, 3, 19)])
def test_batch_first_is_the_transpose_of_time_major(shape, dtype, mode, impl):
    """h, dx and dh0 are bit-identical; the parameter gradients are the same sums taken in
    another order (different GEMM decompositions), so equal to a few ulp."""
    tm = make_problem(*shape, dtype, **MODES[mode], seed=5)
    bf = tm.with_(x=np.ascontiguousarray(tm.x.transpose(1, 0, 2)),
                  dh=None if tm.dh is None else np.ascontiguousarray(tm.dh.transpose(1, 0, 2)),
                  batch_first=True)
    h_tm, _, g_tm = tm.run(impl)
    h_bf, _, g_bf = bf.run(impl)
    assert h_bf.shape == (shape[1], shape[0], shape[3])
    np.testing.assert_array_equal(h_bf, h_tm.transpose(1, 0, 2))
    np.testing.assert_array_equal(g_bf.dx, g_tm.dx.transpose(1, 0, 2))
    np.testing.assert_array_equal(g_bf.dh0, g_tm.dh0)
    ulps = 64 * np.finfo(dtype).eps
    for name in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert_close(getattr(g_bf, name), getattr(g_tm, name), ulps, err_msg=name)


# ------------------------------------------------------------------ strides and aliasing

STRIDED_SHAPE = (5, 3, 4, 6)         # no size-1 axis, transposed step


def _strided_views(a):
    """Views holding a's values with other memory layouts: (label, view) pairs."""
    views = [("reversed", np.ascontiguousarray(a[::-1])[::-1])]
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    views.append(("sliced", wide[..., ::2]))
    if a.ndim >= 2:
        views.append(("fortran", np.asfortranarray(a)))
    ro = a.copy()
    ro.setflags(write=False)
    views.append(("read_only", ro))
    for _label, v in views:
        np.testing.assert_array_equal(v, a)
    return views


@impl_param
@layout_param
def test_noncontiguous_arguments_give_the_same_answer(batch_first, impl):
    p = make_problem(*STRIDED_SHAPE, batch_first=batch_first, seed=11)
    h, h_n, grads = p.run(impl)
    for arg, value in p.arrays().items():
        for label, view in _strided_views(value):
            h2, h_n2, grads2 = p.with_(**{arg: view}).run(impl)
            np.testing.assert_array_equal(h2, h, err_msg=f"{arg} {label}: h")
            np.testing.assert_array_equal(h_n2, h_n, err_msg=f"{arg} {label}: h_n")
            for name in GRAD_NAMES:
                np.testing.assert_array_equal(getattr(grads2, name), getattr(grads, name),
                                              err_msg=f"{arg} {label}: {name}")


@impl_param
@layout_param
@shape_param([STRIDED_SHAPE, (4, 1, 3, 5), (4, 6, 3, 2)])
def test_caller_arrays_are_never_modified(shape, batch_first, impl):
    p = make_problem(*shape, batch_first=batch_first, lengths=np.arange(shape[1]) % 5,
                     seed=14)
    before = {n: a.copy() for n, a in p.arrays().items()}
    lengths_before = p.lengths.copy()
    forward, backward = IMPLS[impl]
    h, cache = forward(*p.forward_args(), **p.forward_kwargs())
    for n, a in p.arrays().items():
        np.testing.assert_array_equal(a, before[n], err_msg=f"forward wrote into {n}")
    backward(p.dh, cache, dh_n=p.dh_n)
    backward(None, cache, dh_n=p.dh_n)
    backward(p.dh, cache)
    for n, a in p.arrays().items():
        np.testing.assert_array_equal(a, before[n], err_msg=f"backward wrote into {n}")
    np.testing.assert_array_equal(p.lengths, lengths_before)


@impl_param
@layout_param
def test_results_are_fresh_and_backward_repeatable(batch_first, impl):
    """h, h_n and every gradient are new arrays the caller may write into; doing so changes
    neither a second backward nor the cache."""
    p = make_problem(*STRIDED_SHAPE, batch_first=batch_first, seed=16)
    forward, backward = IMPLS[impl]
    h, cache = forward(*p.forward_args(), **p.forward_kwargs())
    h_n = cache.h_n
    first = backward(p.dh, cache, dh_n=p.dh_n)
    outputs = {"h": h, "h_n": h_n, **first._asdict()}
    for on, o in outputs.items():
        assert isinstance(o, np.ndarray) and o.flags.c_contiguous and o.flags.writeable, on
        for iname, i in p.arrays().items():
            assert not np.shares_memory(o, i), f"{on} aliases the input {iname}"
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.shares_memory(outputs[a], outputs[b]), f"{a} aliases {b}"
    saved = [g.copy() for g in first]
    expected_h_n = h_n.copy()
    for o in outputs.values():
        o[...] = np.nan
    second = backward(p.dh, cache, dh_n=p.dh_n)
    for name, a, b in zip(GRAD_NAMES, saved, second):
        np.testing.assert_array_equal(b, a, err_msg=name)
    np.testing.assert_array_equal(cache.h_n, expected_h_n)


# ------------------------------------------------------------------ empty sizes

EMPTY_SHAPES = [(0, 2, 3, 4), (3, 0, 2, 4), (3, 2, 0, 4), (3, 2, 3, 0), (0, 0, 0, 0),
                (0, 1, 1, 1)]


@layout_param
@dtype_param
@shape_param(EMPTY_SHAPES)
def test_empty_sizes(shape, dtype, batch_first):
    T, B, I, H = shape
    for mode in MODES.values():
        p = make_problem(*shape, dtype, batch_first=batch_first, **mode, seed=18)
        h, h_n, grads = p.run("compiled")
        h_r, h_n_r, grads_r = p.run("reference")
        assert h.shape == ((B, T, H) if batch_first else (T, B, H))
        assert h_n.shape == (B, H) and h_n.dtype == np.dtype(dtype)
        expected_shapes = {"dx": p.x.shape, "dh0": (B, H), "dW_ih": (3 * H, I),
                           "dW_hh": (3 * H, H), "db_ih": (3 * H,), "db_hh": (3 * H,)}
        for name, s in expected_shapes.items():
            assert getattr(grads, name).shape == s, name
            assert getattr(grads, name).dtype == np.dtype(dtype), name
        assert_same_result(h, h_r, shape, dtype)
        assert_same_result(h_n, h_n_r, shape, dtype)
        for name in GRAD_NAMES:
            assert_same_result(getattr(grads, name), getattr(grads_r, name), shape, dtype, name)
        if T == 0 or B == 0:
            # Nothing flows through any step: zero gradients, dh0 is dh_n passed straight back.
            for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
                assert not np.any(getattr(grads, name)), name
            np.testing.assert_array_equal(grads.dh0, p.dh_n if p.dh_n is not None else 0)
            np.testing.assert_array_equal(h_n, p.h0)


@layout_param
@dtype_param
def test_no_input_features_is_a_zero_input(dtype, batch_first):
    """I = 0 (run by the empty-problem path) equals I = 1 with x = 0 (the kernels)."""
    T, B, H = 4, 3, 5
    p0 = make_problem(T, B, 0, H, dtype, batch_first=batch_first, seed=19)
    p1 = p0.with_(x=np.zeros(p0.x.shape[:2] + (1,), dtype),
                  W_ih=np.full((3 * H, 1), 0.7, dtype))
    h_0, _, g0 = p0.run("compiled")
    h_1, _, g1 = p1.run("compiled")
    rtol, atol = tol_for(dtype)
    assert_close(h_0, h_1, rtol, atol)
    for name in ("dh0", "dW_hh", "db_ih", "db_hh"):
        assert_close(getattr(g0, name), getattr(g1, name), rtol, atol, err_msg=name)
    assert g0.dx.shape == p0.x.shape and g0.dW_ih.shape == (3 * H, 0)


# ------------------------------------------------------------------ variable lengths

# (T, B, I, H, lengths): plain GEMM, GEMV, transposed step; 0 and T among the lengths
LENGTH_CASES = [
    (5, 4, 3, 3, [5, 0, 2, 3]),
    (6, 1, 3, 4, [4]),
    (7, 9, 3, 19, [7, 1, 0, 3, 5, 7, 2, 6, 4]),
    (4, 3, 2, 5, [4, 4, 4]),
]
length_param = pytest.mark.parametrize("case", LENGTH_CASES,
                                       ids=lambda c: "x".join(map(str, c[:4])))


@length_param
@layout_param
@dtype_param
@mode_param
def test_lengths_match_reference(case, dtype, batch_first, mode):
    *shape, lengths = case
    p = make_problem(*shape, dtype, batch_first=batch_first, lengths=lengths, seed=5,
                     **MODES[mode])
    _compare_to_reference(p)


@impl_param
@length_param
@layout_param
def test_lengths_equal_separate_runs(case, batch_first, impl):
    """Each sequence alone, T = its length, gives its rows of every result; the shared
    parameters' gradients are the sums over the separate runs."""
    *shape, lengths = case
    p = make_problem(*shape, np.float64, batch_first=batch_first, lengths=lengths, seed=9)
    h, h_n, grads = p.run(impl)
    summed = {name: 0.0 for name in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    for b, n in enumerate(lengths):
        def seq(a):   # sequence b's first n steps, (n, 1, .) time-major
            a = a[b, :n] if batch_first else a[:n, b]
            return a[:, None]
        alone = GRUProblem(seq(p.x), p.h0[b:b + 1], p.W_ih, p.W_hh, p.b_ih, p.b_hh,
                           seq(p.dh), p.dh_n[b:b + 1])
        h_b, h_n_b, g_b = alone.run(impl)
        h_rows = h[b] if batch_first else h[:, b]
        dx_rows = grads.dx[b] if batch_first else grads.dx[:, b]
        np.testing.assert_allclose(h_rows[:n], h_b[:, 0], rtol=1e-12, atol=1e-12)
        assert not np.any(h_rows[n:]), "outputs past a length must be zero"
        np.testing.assert_allclose(h_n[b], h_n_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx_rows[:n], g_b.dx[:, 0], rtol=1e-12, atol=1e-12)
        assert not np.any(dx_rows[n:]), "dx past a length must be zero"
        np.testing.assert_allclose(grads.dh0[b], g_b.dh0[0], rtol=1e-12, atol=1e-12)
        for name in summed:
            summed[name] = summed[name] + getattr(g_b, name)
    for name, value in summed.items():
        np.testing.assert_allclose(getattr(grads, name), value, rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@impl_param
@layout_param
def test_lengths_ignore_dh_past_the_end(batch_first, impl):
    """dh at padded steps is ignored, even when it is not finite."""
    p = make_problem(4, 2, 3, 3, np.float64, batch_first=batch_first, lengths=[2, 4], seed=4)
    pad = (0, slice(2, None)) if batch_first else (slice(2, None), 0)
    dh = p.dh.copy()
    dh[pad] = np.nan
    clean = p.dh.copy()
    clean[pad] = 0
    _, _, grads = p.with_(dh=dh).run(impl)
    _, _, expected = p.with_(dh=clean).run(impl)
    assert_grads_close(grads, expected, 1e-14, 1e-14)


@impl_param
@layout_param
def test_h_n_is_the_last_step_without_lengths(batch_first, impl):
    p = make_problem(5, 3, 2, 4, np.float64, batch_first=batch_first)
    forward, _ = IMPLS[impl]
    h, cache = forward(*p.forward_args(), **p.forward_kwargs())
    h_n = cache.h_n
    np.testing.assert_array_equal(h_n, _time_slice(h, batch_first, -1))
    h_n[:] = 7   # a fresh array each time
    assert not np.any(cache.h_n == 7)


# ------------------------------------------------------------------ bad input

# A valid problem: T = 3 != B = 2, so a layout mix-up changes the expected shapes.
T_, B_, I_, H_ = 3, 2, 4, 5
G_ = 3 * H_
f32 = np.float32


def _valid(batch_first=False):
    return make_problem(T_, B_, I_, H_, np.float64, batch_first=batch_first, seed=20)


# (id, changes to the valid problem, exception, substrings the message must contain)
FORWARD_ERRORS = [
    # wrong number of dimensions
    ("x_2d", dict(x=np.ones((T_, I_))), ValueError, ["x", "3-D"]),
    ("x_scalar", dict(x=1.0), ValueError, ["x", "3-D"]),
    ("h0_3d", dict(h0=np.ones((1, B_, H_))), ValueError, ["h0", "2-D"]),
    ("W_ih_1d", dict(W_ih=np.ones(G_)), ValueError, ["W_ih", "2-D"]),
    ("W_hh_3d", dict(W_hh=np.ones((1, G_, H_))), ValueError, ["W_hh", "2-D"]),
    ("b_ih_2d", dict(b_ih=np.ones((1, G_))), ValueError, ["b_ih", "1-D"]),
    ("b_hh_0d", dict(b_hh=np.float64(1.0)), ValueError, ["b_hh", "1-D"]),
    # disagreeing shapes
    ("W_ih_wrong_I", dict(W_ih=np.ones((G_, I_ + 1))), ValueError, ["W_ih", r"\(3\*H, I\)"]),
    ("W_ih_one_gate", dict(W_ih=np.ones((H_, I_))), ValueError, ["W_ih", r"\(3\*H, I\)"]),
    ("W_hh_one_gate", dict(W_hh=np.ones((H_, H_))), ValueError, ["W_hh", r"\(3\*H, H\)"]),
    ("W_hh_four_gates", dict(W_hh=np.ones((4 * H_, H_))), ValueError, ["W_hh", r"\(3\*H, H\)"]),
    ("b_ih_one_gate", dict(b_ih=np.ones(H_)), ValueError, ["b_ih", r"\(3\*H,\)"]),
    ("b_hh_short", dict(b_hh=np.ones(G_ - 1)), ValueError, ["b_hh", r"\(3\*H,\)"]),
    ("h0_wrong_H", dict(h0=np.ones((B_, H_ + 1))), ValueError, ["h0", r"\(B, H\)"]),
    ("h0_transposed", dict(h0=np.ones((H_, B_))), ValueError, ["h0", r"\(B, H\)"]),
    ("x_time_major_with_batch_first", dict(batch_first=True), ValueError, ["h0", r"\(B, H\)"]),
    # mixed dtypes: the message names both arrays
    ("h0_f32", dict(h0=np.ones((B_, H_), f32)), TypeError, ["h0", r"\bx\b", "float32"]),
    ("W_ih_f32", dict(W_ih=np.ones((G_, I_), f32)), TypeError, ["W_ih", r"\bx\b", "float32"]),
    ("b_hh_f32", dict(b_hh=np.ones(G_, f32)), TypeError, ["b_hh", r"\bx\b", "float32"]),
    ("x_f32", dict(x=np.ones((T_, B_, I_), f32)), TypeError, ["W_hh", r"\bx\b", "float32"]),
    # not floating point
    ("x_int", dict(x=np.ones((T_, B_, I_), np.int64)), TypeError, ["x", "float32 or float64"]),
    ("x_bool", dict(x=np.ones((T_, B_, I_), bool)), TypeError, ["x", "bool"]),
    ("x_ragged_list", dict(x=[[[1.0]], [[1.0, 2.0]]]), TypeError, ["x"]),
    ("W_hh_int", dict(W_hh=np.ones((G_, H_), np.int32)), TypeError, ["W_hh", "int32"]),
    ("h0_complex", dict(h0=np.ones((B_, H_), complex)), TypeError, ["h0", "complex"]),
    ("b_ih_object", dict(b_ih=np.ones(G_, object)), TypeError, ["b_ih", "object"]),
    # options
    ("only_b_ih", dict(b_hh=None), ValueError, ["b_ih", "b_hh"]),
    ("batch_first_int", dict(batch_first=1), TypeError, ["batch_first"]),
    ("batch_first_None", dict(batch_first=None), TypeError, ["batch_first"]),
    # validated even when the problem is empty (the empty path is not a way around checks)
    ("empty_T_W_ih_wrong", dict(x=np.ones((0, B_, I_)), W_ih=np.ones((G_, I_ + 1))),
     ValueError, ["W_ih"]),
    ("empty_T_f32_W_hh", dict(x=np.ones((0, B_, I_)), W_hh=np.ones((G_, H_), f32)),
     TypeError, ["W_hh", r"\bx\b"]),
]


@impl_param
@pytest.mark.parametrize("changes,exc,needles", [c[1:] for c in FORWARD_ERRORS],
                         ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_rejects_bad_input(changes, exc, needles, impl):
    p = _valid().with_(**changes)
    forward, _ = IMPLS[impl]
    raises_naming(exc, needles, lambda: forward(*p.forward_args(), **p.forward_kwargs()))


@impl_param
@pytest.mark.parametrize("lengths,exc,needle", [c[1:] for c in BAD_LENGTHS],
                         ids=[c[0] for c in BAD_LENGTHS])
def test_bad_lengths(lengths, exc, needle, impl):
    p = make_problem(5, 3, 2, 4).with_(lengths=lengths)   # passed on as given
    forward, _ = IMPLS[impl]
    with pytest.raises(exc, match=needle):
        forward(*p.forward_args(), **p.forward_kwargs())


# (id, batch_first of the forward pass, dh, dh_n, exception, message substrings)
BACKWARD_ERRORS = [
    ("both_None", False, None, None, ValueError, ["dh", "dh_n"]),
    ("dh_2d", False, np.ones((T_ * B_, H_)), None, ValueError, ["dh", "3-D"]),
    ("dh_n_1d", False, None, np.ones(H_), ValueError, ["dh_n", "2-D"]),
    ("dh_wrong_H", False, np.ones((T_, B_, H_ + 1)), None, ValueError, ["dh", r"\(T, B, H\)"]),
    ("dh_gate_sized", False, np.ones((T_, B_, G_)), None, ValueError, ["dh", r"\(T, B, H\)"]),
    ("dh_time_major_given_batch_first", True, np.ones((T_, B_, H_)), None, ValueError,
     ["dh", r"\(B, T, H\)"]),
    ("dh_n_wrong_B", False, np.ones((T_, B_, H_)), np.ones((B_ + 1, H_)), ValueError,
     ["dh_n", r"\(B, H\)"]),
    ("dh_f32", False, np.ones((T_, B_, H_), f32), None, TypeError, ["dh", r"\bx\b", "float32"]),
    ("dh_n_f32", False, None, np.ones((B_, H_), f32), TypeError, ["dh_n", r"\bx\b", "float32"]),
    ("dh_int", False, np.ones((T_, B_, H_), int), None, TypeError, ["dh", "float32 or float64"]),
    ("dh_n_bool", False, None, np.ones((B_, H_), bool), TypeError, ["dh_n", "bool"]),
]


@impl_param
@pytest.mark.parametrize("batch_first,dh,dh_n,exc,needles",
                         [c[1:] for c in BACKWARD_ERRORS], ids=[c[0] for c in BACKWARD_ERRORS])
def test_backward_rejects_bad_input(batch_first, dh, dh_n, exc, needles, impl):
    p = _valid(batch_first)
    forward, backward = IMPLS[impl]
    _, cache = forward(*p.forward_args(), **p.forward_kwargs())
    raises_naming(exc, needles, lambda: backward(dh, cache, dh_n=dh_n))


@pytest.mark.parametrize("shape", [(T_, B_, I_, H_), (0, B_, I_, H_)], ids=["full", "empty"])
@pytest.mark.parametrize("forward_impl,backward_impl", [("compiled", "reference")])
def test_the_other_implementations_cache_is_rejected(shape, forward_impl, backward_impl):
    # (fastbptt.gru_backward takes a reference cache: the backend switch sends it to the
    # reference backward; tests/test_backend.py)
    p = make_problem(*shape, seed=21)
    _, cache = IMPLS[forward_impl][0](*p.forward_args())
    with pytest.raises(TypeError, match="cache"):
        IMPLS[backward_impl][1](p.dh, cache, dh_n=p.dh_n)


@impl_param
@pytest.mark.parametrize("cache", [None, {}, (1, 2), "cache", np.ones(3)],
                         ids=["None", "dict", "tuple", "str", "ndarray"])
def test_backward_rejects_non_cache(cache, impl):
    _, backward = IMPLS[impl]
    with pytest.raises(TypeError, match="cache"):
        backward(np.ones((T_, B_, H_)), cache)


# ------------------------------------------------------------------ torch oracle

TORCH_SHAPES = [(6, 3, 4, 5), (5, 1, 3, 4), (4, 2, 3, 7)]   # plain, gemv, transposed step


def _torch_gru(torch, p, dtype, bias):
    T, B, I = p.x.shape if not p.batch_first else (p.x.shape[1], p.x.shape[0], p.x.shape[2])
    H = p.W_hh.shape[1]
    gru = torch.nn.GRU(I, H, num_layers=1, bias=bias, batch_first=p.batch_first,
                       dtype=torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(p.W_ih))
        gru.weight_hh_l0.copy_(torch.from_numpy(p.W_hh))
        if bias:
            gru.bias_ih_l0.copy_(torch.from_numpy(p.b_ih))
            gru.bias_hh_l0.copy_(torch.from_numpy(p.b_hh))
    return gru


def _check_against_torch(torch, p, dtype, bias):
    """Run p through torch.nn.GRU (packed when p has lengths) and through the compiled
    GRU; outputs, final states and every gradient agree."""
    gru = _torch_gru(torch, p, dtype, bias)
    x = torch.from_numpy(p.x.copy()).requires_grad_()
    h0 = torch.from_numpy(p.h0.copy()[None]).requires_grad_()
    if p.lengths is None:
        out, h_n = gru(x, h0)
    else:
        T = p.x.shape[1] if p.batch_first else p.x.shape[0]
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.from_numpy(p.lengths), batch_first=p.batch_first, enforce_sorted=False)
        out_packed, h_n = gru(packed, h0)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=p.batch_first,
                                                        total_length=T)
    loss = (out * torch.from_numpy(p.dh)).sum() + (h_n[0] * torch.from_numpy(p.dh_n)).sum()
    loss.backward()

    h, ours_h_n, grads = p.run("compiled")
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    atol = rtol if dtype == np.float64 else 1e-5
    assert_close(h, out.detach().numpy(), rtol, atol, err_msg="h")
    assert_close(ours_h_n, h_n[0].detach().numpy(), rtol, atol, err_msg="h_n")
    expected = {"dx": x.grad, "dh0": h0.grad[0], "dW_ih": gru.weight_ih_l0.grad,
                "dW_hh": gru.weight_hh_l0.grad}
    if bias:
        expected.update(db_ih=gru.bias_ih_l0.grad, db_hh=gru.bias_hh_l0.grad)
    else:
        assert grads.db_ih is None and grads.db_hh is None
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.dtype == np.dtype(dtype)
        assert_close(got, value.numpy(), rtol, atol, err_msg=name)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@shape_param(TORCH_SHAPES)
def test_matches_torch(shape, dtype, batch_first, bias):
    torch = pytest.importorskip("torch")
    p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, seed=22)
    _check_against_torch(torch, p, dtype, bias)


@layout_param
@dtype_param
@pytest.mark.parametrize("case", [(6, 4, 3, 5, [6, 2, 4, 1]), (5, 3, 2, 9, [3, 5, 1])],
                         ids=lambda c: "x".join(map(str, c[:4])))
def test_lengths_match_torch_packed_sequence(case, dtype, batch_first):
    """(pack_padded_sequence refuses length 0: that case is held to separate runs.)"""
    torch = pytest.importorskip("torch")
    *shape, lengths = case
    p = make_problem(*shape, dtype, batch_first=batch_first, lengths=lengths, seed=31)
    _check_against_torch(torch, p, dtype, True)
