"""Vanilla RNN: the compiled fastbptt.rnn_forward/rnn_backward against their reference
twins (fastbptt.reference), finite differences, a hand-computed case, layouts, strides,
empty sizes, bad input, and (when installed) torch.nn.RNN.
"""
import math
import re

import numpy as np
import pytest

import fastbptt
from _helpers import (
    DTYPES,
    GRAD_NAMES,
    IMPLS,
    assert_close,
    assert_grads_close,
    assert_same_result,
    last_state,
    make_problem,
    numerical_gradient,
    preactivations,
    relative_error,
    tol_for,
)
from fastbptt import reference

NONLINEARITIES = ("tanh", "relu", "sigmoid", "identity")

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
    (2, 3, 4, 6),      # transposed step with T <= B
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
shape_param = pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
impl_param = pytest.mark.parametrize("impl", list(IMPLS))


def _compare_to_reference(p, err_msg=""):
    h, grads = p.run("compiled")
    h_ref, grads_ref = p.run("reference")
    rtol, atol = tol_for(p.x.dtype)
    assert h.dtype == h_ref.dtype == p.x.dtype
    assert_close(h, h_ref, rtol, atol, err_msg=f"{err_msg} h")
    assert_grads_close(grads, grads_ref, rtol, atol, err_msg=err_msg)


# ------------------------------------------------------------------ compiled == reference

@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@layout_param
@dtype_param
@shape_param
def test_matches_reference(shape, dtype, batch_first, nonlinearity, mode):
    p = make_problem(*shape, dtype, nonlinearity=nonlinearity, batch_first=batch_first,
                     **MODES[mode], seed=sum(shape))
    _compare_to_reference(p)


@pytest.mark.parametrize("h0", [True, False], ids=["h0", "h0_None"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@shape_param
def test_matches_reference_bias_and_h0(shape, dtype, batch_first, bias, h0):
    p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, h0=h0,
                     nonlinearity="sigmoid", seed=1 + sum(shape))
    _compare_to_reference(p)
    _, grads = p.run("compiled")
    if not bias:
        assert grads.db_ih is None and grads.db_hh is None
    else:
        np.testing.assert_array_equal(grads.db_ih, grads.db_hh)


# ------------------------------------------------------------------ finite differences

FD_SHAPES = [(4, 3, 2, 3), (3, 1, 2, 4), (5, 2, 3, 4)]   # plain GEMM, GEMV, transposed


def _fd_problem(shape, nonlinearity, batch_first):
    """A float64 problem; for relu, one whose pre-activations keep clear of the kink."""
    for seed in range(100):
        p = make_problem(*shape, np.float64, nonlinearity=nonlinearity,
                         batch_first=batch_first, seed=seed)
        if nonlinearity != "relu" or np.min(np.abs(preactivations(p))) > 1e-3:
            return p
    raise AssertionError("no seed keeps relu's pre-activations away from 0")


@impl_param
@layout_param
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("shape", FD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gradients_match_finite_differences(shape, nonlinearity, batch_first, impl):
    p = _fd_problem(shape, nonlinearity, batch_first)
    _, grads = p.run(impl)
    for grad_name, arg_name in zip(GRAD_NAMES, ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh")):
        analytic = getattr(grads, grad_name)
        numeric = numerical_gradient(p, arg_name, impl)
        assert analytic.shape == numeric.shape
        assert np.max(np.abs(numeric)) > 1e-3, f"{arg_name}: degenerate test, zero gradient"
        err = relative_error(analytic, numeric)
        assert err < 1e-6, f"{grad_name}: relative error {err:.2e}"


# ------------------------------------------------------------------ dtypes

@impl_param
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@pytest.mark.parametrize("shape", [(4, 3, 2, 5), (3, 1, 4, 2), (0, 2, 3, 4), (3, 2, 0, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_dtype_in_is_dtype_out(shape, dtype, batch_first, bias, impl):
    for mode in MODES.values():
        p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, h0=False, **mode)
        h, grads = p.run(impl)
        assert h.dtype == np.dtype(dtype)
        for name in GRAD_NAMES:
            g = getattr(grads, name)
            if name.startswith("db") and not bias:
                assert g is None
            else:
                assert g.dtype == np.dtype(dtype), f"{name} is {g.dtype}"


# ------------------------------------------------------------------ a case by hand

@impl_param
@dtype_param
def test_hand_computed_tanh(dtype, impl):
    """T = 2, B = I = H = 1, tanh, written out step by step."""
    w_ih, w_hh, b_ih, b_hh, h0 = 0.5, -0.75, 0.125, 0.25, 0.375
    x1, x2 = 1.0, -2.0
    g1, g2, gn = 0.5, -1.0, 2.0      # dL/dh_1, dL/dh_2 from the loss, dL/dh_2 from outside

    a1 = w_ih * x1 + b_ih + w_hh * h0 + b_hh
    h1 = math.tanh(a1)
    a2 = w_ih * x2 + b_ih + w_hh * h1 + b_hh
    h2 = math.tanh(a2)
    dA2 = (g2 + gn) * (1 - h2 ** 2)
    dA1 = (g1 + dA2 * w_hh) * (1 - h1 ** 2)
    expected = {
        "dx": [[[dA1 * w_ih]], [[dA2 * w_ih]]],
        "dh0": [[dA1 * w_hh]],
        "dW_ih": [[dA1 * x1 + dA2 * x2]],
        "dW_hh": [[dA1 * h0 + dA2 * h1]],
        "db_ih": [dA1 + dA2],
        "db_hh": [dA1 + dA2],
    }

    def arr(v):
        return np.array(v, dtype)

    forward, backward = IMPLS[impl]
    h, cache = forward(arr([[[x1]], [[x2]]]), arr([[h0]]), arr([[w_ih]]), arr([[w_hh]]),
                       arr([b_ih]), arr([b_hh]), nonlinearity="tanh")
    grads = backward(arr([[[g1]], [[g2]]]), cache, dh_n=arr([[gn]]))
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(h, [[[h1]], [[h2]]], rtol=rtol)
    assert h.shape == (2, 1, 1)
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.shape == np.shape(value), name
        np.testing.assert_allclose(got, value, rtol=rtol, err_msg=name)


# ------------------------------------------------------------------ layouts

@impl_param
@pytest.mark.parametrize("mode", list(MODES))
@dtype_param
@shape_param
def test_batch_first_is_the_transpose_of_time_major(shape, dtype, mode, impl):
    """h, dx and dh0 are bit-identical; the parameter gradients are the same sums taken in
    another order (different GEMM decompositions), so equal to a few ulp."""
    tm = make_problem(*shape, dtype, nonlinearity="tanh", **MODES[mode], seed=5)
    bf = tm.with_(x=np.ascontiguousarray(tm.x.transpose(1, 0, 2)),
                  dh=None if tm.dh is None else np.ascontiguousarray(tm.dh.transpose(1, 0, 2)),
                  batch_first=True)
    h_tm, g_tm = tm.run(impl)
    h_bf, g_bf = bf.run(impl)
    assert h_bf.shape == (shape[1], shape[0], shape[3])
    assert g_bf.dx.shape == (shape[1], shape[0], shape[2])
    np.testing.assert_array_equal(h_bf, h_tm.transpose(1, 0, 2))
    np.testing.assert_array_equal(g_bf.dx, g_tm.dx.transpose(1, 0, 2))
    np.testing.assert_array_equal(g_bf.dh0, g_tm.dh0)
    ulps = 64 * np.finfo(dtype).eps
    for name in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert_close(getattr(g_bf, name), getattr(g_tm, name), ulps, err_msg=name)


# ------------------------------------------------------------------ strides and aliasing

NONCONTIG_SHAPE = (5, 3, 4, 6)         # no size-1 axis: every view below really is strided


def _noncontiguous_views(a):
    """Views holding a's values with other memory layouts: (label, view) pairs."""
    views = []
    rev = np.ascontiguousarray(a[::-1])[::-1]            # negative stride on axis 0
    views.append(("reversed", rev))
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    views.append(("sliced", wide[..., ::2]))               # every other element
    if a.ndim >= 2:
        views.append(("fortran", np.asfortranarray(a)))
        perm = tuple(reversed(range(a.ndim)))
        views.append(("transposed", np.ascontiguousarray(a.transpose(perm)).transpose(perm)))
    ro = a.copy()
    ro.setflags(write=False)
    views.append(("read_only", ro))
    if a.shape and a.shape[0] > 1 and np.all(a == a[:1]):
        views.append(("broadcast", np.broadcast_to(a[:1], a.shape)))
    for label, v in views:
        np.testing.assert_array_equal(v, a)
        if label in ("reversed", "sliced", "fortran", "transposed"):
            assert not v.flags.c_contiguous, label
    return views


def _strided_problem(seed, batch_first):
    return make_problem(*NONCONTIG_SHAPE, np.float64, batch_first=batch_first, seed=seed)


@impl_param
@layout_param
@pytest.mark.parametrize("arg", ["x", "h0", "W_ih", "W_hh", "b_ih", "b_hh", "dh", "dh_n"])
def test_noncontiguous_argument_gives_the_same_answer(arg, batch_first, impl):
    p = _strided_problem(11, batch_first)
    h, grads = p.run(impl)
    for label, view in _noncontiguous_views(getattr(p, arg)):
        h2, grads2 = p.with_(**{arg: view}).run(impl)
        np.testing.assert_array_equal(h2, h, err_msg=f"{arg} {label}: h")
        for name in GRAD_NAMES:
            np.testing.assert_array_equal(getattr(grads2, name), getattr(grads, name),
                                          err_msg=f"{arg} {label}: {name}")


@impl_param
@layout_param
def test_broadcast_arguments(batch_first, impl):
    """Zero-stride views (read-only, overlapping) are read, never written."""
    T, B, I, H = NONCONTIG_SHAPE
    p = _strided_problem(12, batch_first)
    row = np.linspace(-1, 1, H)
    q = p.with_(h0=np.broadcast_to(row, (B, H)), b_ih=np.broadcast_to(0.1, (H,)),
                dh_n=np.broadcast_to(row[::-1], (B, H)))
    h, grads = q.run(impl)
    h2, grads2 = q.with_(h0=q.h0.copy(), b_ih=q.b_ih.copy(), dh_n=q.dh_n.copy()).run(impl)
    np.testing.assert_array_equal(h, h2)
    for name in GRAD_NAMES:
        np.testing.assert_array_equal(getattr(grads, name), getattr(grads2, name))


@impl_param
@layout_param
def test_all_arguments_noncontiguous_at_once(batch_first, impl):
    p = _strided_problem(13, batch_first)
    h, grads = p.run(impl)
    kinds = ["reversed", "sliced", "fortran", "transposed"]
    changes = {}
    for i, (name, a) in enumerate(p.arrays().items()):
        views = dict(_noncontiguous_views(a))
        changes[name] = views.get(kinds[i % len(kinds)], views["reversed"])
    h2, grads2 = p.with_(**changes).run(impl)
    np.testing.assert_array_equal(h2, h)
    for name in GRAD_NAMES:
        np.testing.assert_array_equal(getattr(grads2, name), getattr(grads, name), name)


@impl_param
@layout_param
@pytest.mark.parametrize("shape", [NONCONTIG_SHAPE, (4, 1, 3, 5), (4, 2, 3, 5)],
                         ids=lambda s: "x".join(map(str, s)))
def test_caller_arrays_are_never_modified(shape, batch_first, impl):
    p = make_problem(*shape, batch_first=batch_first, seed=14)
    before = {n: a.copy() for n, a in p.arrays().items()}
    forward, backward = IMPLS[impl]
    h, cache = forward(*p.forward_args(), **p.forward_kwargs())
    for n, a in p.arrays().items():
        np.testing.assert_array_equal(a, before[n], err_msg=f"forward wrote into {n}")
    backward(p.dh, cache, dh_n=p.dh_n)
    backward(None, cache, dh_n=p.dh_n)
    backward(p.dh, cache)
    for n, a in p.arrays().items():
        np.testing.assert_array_equal(a, before[n], err_msg=f"backward wrote into {n}")


@impl_param
@layout_param
@pytest.mark.parametrize("shape", [NONCONTIG_SHAPE, (4, 1, 3, 5), (4, 2, 3, 5)],
                         ids=lambda s: "x".join(map(str, s)))
def test_backward_twice_gives_identical_results(shape, batch_first, impl):
    p = make_problem(*shape, batch_first=batch_first, seed=15)
    forward, backward = IMPLS[impl]
    _, cache = forward(*p.forward_args(), **p.forward_kwargs())
    first = backward(p.dh, cache, dh_n=p.dh_n)
    saved = [g.copy() for g in first]
    for g in first:          # results are the caller's: scribbling on them changes nothing
        g[...] = np.nan
    second = backward(p.dh, cache, dh_n=p.dh_n)
    for name, a, b in zip(GRAD_NAMES, saved, second):
        np.testing.assert_array_equal(b, a, err_msg=name)


@impl_param
@layout_param
@pytest.mark.parametrize("shape", [NONCONTIG_SHAPE, (4, 1, 3, 5), (3, 2, 0, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_modifying_returned_h_does_not_change_backward(shape, batch_first, impl):
    """h is a new array: the caller may edit it in place (h *= mask) before backward."""
    p = make_problem(*shape, batch_first=batch_first, seed=16)
    forward, backward = IMPLS[impl]
    _, cache = forward(*p.forward_args(), **p.forward_kwargs())
    expected = backward(p.dh, cache, dh_n=p.dh_n)
    h, cache = forward(*p.forward_args(), **p.forward_kwargs())
    h[...] = 0.5
    got = backward(p.dh, cache, dh_n=p.dh_n)
    for name in GRAD_NAMES:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name),
                                      err_msg=f"{name} changed after writing into h")


@impl_param
@layout_param
@pytest.mark.parametrize("shape", [NONCONTIG_SHAPE, (4, 1, 3, 5), (1, 1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_outputs_are_fresh_arrays(shape, batch_first, impl):
    p = make_problem(*shape, batch_first=batch_first, seed=17)
    h, grads = p.run(impl)
    outputs = {"h": h, **grads._asdict()}
    inputs = p.arrays()
    for on, o in outputs.items():
        assert isinstance(o, np.ndarray) and o.flags.c_contiguous and o.flags.writeable, on
        for iname, i in inputs.items():
            assert not np.shares_memory(o, i), f"{on} aliases the input {iname}"
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.shares_memory(outputs[a], outputs[b]), f"{a} aliases {b}"


# ------------------------------------------------------------------ empty sizes

EMPTY_SHAPES = [(0, 2, 3, 4), (3, 0, 2, 4), (3, 2, 0, 4), (3, 2, 3, 0), (0, 0, 0, 0),
                (0, 1, 1, 1)]


@pytest.mark.parametrize("mode", list(MODES))
@layout_param
@dtype_param
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty_sizes(shape, dtype, batch_first, mode):
    T, B, I, H = shape
    p = make_problem(*shape, dtype, batch_first=batch_first, **MODES[mode], seed=18)
    h, grads = p.run("compiled")
    h_ref, grads_ref = p.run("reference")
    assert h.shape == ((B, T, H) if batch_first else (T, B, H))
    expected_shapes = {"dx": p.x.shape, "dh0": (B, H), "dW_ih": (H, I), "dW_hh": (H, H),
                       "db_ih": (H,), "db_hh": (H,)}
    for name, s in expected_shapes.items():
        assert getattr(grads, name).shape == s, name
        assert getattr(grads, name).dtype == np.dtype(dtype), name
    assert_same_result(h, h_ref, shape, dtype)
    for name in GRAD_NAMES:
        assert_same_result(getattr(grads, name), getattr(grads_ref, name), shape, dtype, name)
    if T == 0 or B == 0:
        # Nothing flows through any step: zero gradients, dh0 is dh_n passed straight back.
        for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
            assert not np.any(getattr(grads, name)), name
        np.testing.assert_array_equal(grads.dh0, p.dh_n if p.dh_n is not None else 0)
    if H == 0:
        assert not np.any(grads.dx)


@layout_param
@dtype_param
def test_no_input_features_is_a_zero_input(dtype, batch_first):
    """I = 0 (run by the empty-problem path) equals I = 1 with x = 0 (the kernels)."""
    T, B, H = 4, 3, 5
    p0 = make_problem(T, B, 0, H, dtype, batch_first=batch_first, seed=19)
    p1 = p0.with_(x=np.zeros(p0.x.shape[:2] + (1,), dtype),
                  W_ih=np.full((H, 1), 0.7, dtype))
    h0_, g0 = p0.run("compiled")
    h1_, g1 = p1.run("compiled")
    rtol, atol = tol_for(dtype)
    assert_close(h0_, h1_, rtol, atol)
    for name in ("dh0", "dW_hh", "db_ih", "db_hh"):
        assert_close(getattr(g0, name), getattr(g1, name), rtol, atol, err_msg=name)
    assert g0.dx.shape == p0.x.shape and g0.dW_ih.shape == (H, 0)


# ------------------------------------------------------------------ bad input

# A valid problem: T = 3 != B = 2, so a layout mix-up changes the expected shapes.
T_, B_, I_, H_ = 3, 2, 4, 5


def _valid(batch_first=False):
    return make_problem(T_, B_, I_, H_, np.float64, batch_first=batch_first, seed=20)


f32 = np.float32

# (id, changes to the valid problem, exception, substrings the message must contain)
FORWARD_ERRORS = [
    # wrong number of dimensions
    ("x_2d", dict(x=np.ones((T_, I_))), ValueError, ["x", "3-D"]),
    ("x_4d", dict(x=np.ones((T_, B_, I_, 1))), ValueError, ["x", "3-D"]),
    ("h0_3d", dict(h0=np.ones((1, B_, H_))), ValueError, ["h0", "2-D"]),
    ("h0_1d", dict(h0=np.ones(H_)), ValueError, ["h0", "2-D"]),
    ("W_ih_3d", dict(W_ih=np.ones((1, H_, I_))), ValueError, ["W_ih", "2-D"]),
    ("W_ih_1d", dict(W_ih=np.ones(H_)), ValueError, ["W_ih", "2-D"]),
    ("W_hh_1d", dict(W_hh=np.ones(H_)), ValueError, ["W_hh", "2-D"]),
    ("W_hh_3d", dict(W_hh=np.ones((1, H_, H_))), ValueError, ["W_hh", "2-D"]),
    ("b_ih_2d", dict(b_ih=np.ones((1, H_))), ValueError, ["b_ih", "1-D"]),
    ("b_hh_0d", dict(b_hh=np.float64(1.0)), ValueError, ["b_hh", "1-D"]),
    ("x_scalar", dict(x=1.0), ValueError, ["x", "3-D"]),
    # disagreeing shapes
    ("W_ih_wrong_I", dict(W_ih=np.ones((H_, I_ + 1))), ValueError, ["W_ih", "(H, I)"]),
    ("W_ih_wrong_H", dict(W_ih=np.ones((H_ + 1, I_))), ValueError, ["W_ih", "(H, I)"]),
    ("W_hh_not_square_wide", dict(W_hh=np.ones((H_, H_ + 1))), ValueError, ["W_hh", "(H, H)"]),
    ("W_hh_not_square_tall", dict(W_hh=np.ones((H_ + 1, H_))), ValueError, ["W_hh", "(H, H)"]),
    ("b_ih_long", dict(b_ih=np.ones(H_ + 1)), ValueError, ["b_ih", "(H,)"]),
    ("b_hh_short", dict(b_hh=np.ones(H_ - 1)), ValueError, ["b_hh", "(H,)"]),
    ("h0_wrong_B", dict(h0=np.ones((B_ + 1, H_))), ValueError, ["h0", "(B, H)"]),
    ("h0_wrong_H", dict(h0=np.ones((B_, H_ + 1))), ValueError, ["h0", "(B, H)"]),
    ("h0_transposed", dict(h0=np.ones((H_, B_))), ValueError, ["h0", "(B, H)"]),
    ("x_time_major_with_batch_first", dict(batch_first=True), ValueError, ["h0", "(B, H)"]),
    # mixed dtypes: the message names both arrays
    ("h0_f32", dict(h0=np.ones((B_, H_), f32)), TypeError, ["h0", r"\bx\b", "float32"]),
    ("W_ih_f32", dict(W_ih=np.ones((H_, I_), f32)), TypeError, ["W_ih", r"\bx\b", "float32"]),
    ("W_hh_f32", dict(W_hh=np.ones((H_, H_), f32)), TypeError, ["W_hh", r"\bx\b", "float32"]),
    ("b_ih_f32", dict(b_ih=np.ones(H_, f32)), TypeError, ["b_ih", r"\bx\b", "float32"]),
    ("b_hh_f32", dict(b_hh=np.ones(H_, f32)), TypeError, ["b_hh", r"\bx\b", "float32"]),
    ("x_f32", dict(x=np.ones((T_, B_, I_), f32)), TypeError, ["W_hh", r"\bx\b", "float32"]),
    # not floating point
    ("x_int", dict(x=np.ones((T_, B_, I_), np.int64)), TypeError, ["x", "float32 or float64"]),
    ("x_bool", dict(x=np.ones((T_, B_, I_), bool)), TypeError, ["x", "bool"]),
    ("x_complex", dict(x=np.ones((T_, B_, I_), complex)), TypeError, ["x", "complex"]),
    ("x_float16", dict(x=np.ones((T_, B_, I_), np.float16)), TypeError, ["x", "float16"]),
    ("x_object", dict(x=np.ones((T_, B_, I_), object)), TypeError, ["x", "object"]),
    ("x_ragged_list", dict(x=[[[1.0]], [[1.0, 2.0]]]), TypeError, ["x"]),
    ("x_string", dict(x="abc"), TypeError, ["x"]),
    ("W_hh_int", dict(W_hh=np.ones((H_, H_), np.int32)), TypeError, ["W_hh", "int32"]),
    ("W_ih_complex", dict(W_ih=np.ones((H_, I_), complex)), TypeError, ["W_ih", "complex"]),
    ("h0_bool", dict(h0=np.ones((B_, H_), bool)), TypeError, ["h0", "bool"]),
    ("b_ih_object", dict(b_ih=np.ones(H_, object)), TypeError, ["b_ih", "object"]),
    ("b_hh_int", dict(b_hh=np.ones(H_, np.int64)), TypeError, ["b_hh", "int64"]),
    # options
    ("nonlinearity_unknown", dict(nonlinearity="softplus"), ValueError,
     ["nonlinearity", "softplus"]),
    ("nonlinearity_case", dict(nonlinearity="Tanh"), ValueError, ["nonlinearity"]),
    ("nonlinearity_None", dict(nonlinearity=None), ValueError, ["nonlinearity"]),
    ("nonlinearity_unhashable", dict(nonlinearity=["tanh"]), ValueError, ["nonlinearity"]),
    ("only_b_ih", dict(b_hh=None), ValueError, ["b_ih", "b_hh"]),
    ("only_b_hh", dict(b_ih=None), ValueError, ["b_ih", "b_hh"]),
    ("batch_first_int", dict(batch_first=1), TypeError, ["batch_first"]),
    ("batch_first_zero", dict(batch_first=0), TypeError, ["batch_first"]),
    ("batch_first_str", dict(batch_first="True"), TypeError, ["batch_first"]),
    ("batch_first_None", dict(batch_first=None), TypeError, ["batch_first"]),
    # validated even when the problem is empty (the empty path is not a way around checks)
    ("empty_T_W_ih_wrong", dict(x=np.ones((0, B_, I_)), W_ih=np.ones((H_, I_ + 1))),
     ValueError, ["W_ih"]),
    ("empty_T_f32_W_hh", dict(x=np.ones((0, B_, I_)), W_hh=np.ones((H_, H_), f32)),
     TypeError, ["W_hh", r"\bx\b"]),
]


def _raises(exc, needles, call):
    with pytest.raises(exc, match=needles[0]) as info:
        call()
    for needle in needles[1:]:
        assert re.search(needle, str(info.value)), (
            f"{needle!r} not in the message {str(info.value)!r}")


@impl_param
@pytest.mark.parametrize("changes,exc,needles", [c[1:] for c in FORWARD_ERRORS],
                         ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_rejects_bad_input(changes, exc, needles, impl):
    p = _valid().with_(**changes)
    forward, _ = IMPLS[impl]
    _raises(exc, needles, lambda: forward(*p.forward_args(), **p.forward_kwargs()))


# (id, batch_first of the forward pass, dh, dh_n, exception, message substrings)
BACKWARD_ERRORS = [
    ("both_None", False, None, None, ValueError, ["dh", "dh_n"]),
    ("dh_2d", False, np.ones((T_ * B_, H_)), None, ValueError, ["dh", "3-D"]),
    ("dh_4d", False, np.ones((T_, B_, H_, 1)), None, ValueError, ["dh", "3-D"]),
    ("dh_n_3d", False, None, np.ones((1, B_, H_)), ValueError, ["dh_n", "2-D"]),
    ("dh_n_1d", False, None, np.ones(H_), ValueError, ["dh_n", "2-D"]),
    ("dh_wrong_T", False, np.ones((T_ + 1, B_, H_)), None, ValueError, ["dh", r"\(T, B, H\)"]),
    ("dh_wrong_H", False, np.ones((T_, B_, H_ + 1)), None, ValueError, ["dh", r"\(T, B, H\)"]),
    ("dh_batch_first_given_time_major", True, np.ones((T_, B_, H_)), None, ValueError,
     ["dh", r"\(B, T, H\)"]),
    ("dh_time_major_given_batch_first", False, np.ones((B_, T_, H_)), None, ValueError,
     ["dh", r"\(T, B, H\)"]),
    ("dh_n_wrong_B", False, np.ones((T_, B_, H_)), np.ones((B_ + 1, H_)), ValueError,
     ["dh_n", r"\(B, H\)"]),
    ("dh_n_wrong_H", False, None, np.ones((B_, H_ - 1)), ValueError, ["dh_n", r"\(B, H\)"]),
    ("dh_f32", False, np.ones((T_, B_, H_), f32), None, TypeError, ["dh", r"\bx\b", "float32"]),
    ("dh_n_f32", False, None, np.ones((B_, H_), f32), TypeError, ["dh_n", r"\bx\b", "float32"]),
    ("dh_int", False, np.ones((T_, B_, H_), int), None, TypeError, ["dh", "float32 or float64"]),
    ("dh_n_bool", False, None, np.ones((B_, H_), bool), TypeError, ["dh_n", "bool"]),
    ("dh_complex", False, np.ones((T_, B_, H_), complex), None, TypeError, ["dh", "complex"]),
    ("dh_object", False, np.ones((T_, B_, H_), object), None, TypeError, ["dh", "object"]),
]


@impl_param
@pytest.mark.parametrize("batch_first,dh,dh_n,exc,needles",
                         [c[1:] for c in BACKWARD_ERRORS], ids=[c[0] for c in BACKWARD_ERRORS])
def test_backward_rejects_bad_input(batch_first, dh, dh_n, exc, needles, impl):
    p = _valid(batch_first)
    forward, backward = IMPLS[impl]
    _, cache = forward(*p.forward_args(), **p.forward_kwargs())
    _raises(exc, needles, lambda: backward(dh, cache, dh_n=dh_n))


@pytest.mark.parametrize("shape", [(T_, B_, I_, H_), (0, B_, I_, H_)], ids=["full", "empty"])
def test_reference_cache_goes_to_reference_backward(shape):
    # The backend switch (fastbptt.runtime.backend): a backward follows its cache's maker.
    p = make_problem(*shape, seed=21)
    _, ref_cache = reference.rnn_forward(*p.forward_args())
    got = fastbptt.rnn_backward(p.dh, ref_cache, dh_n=p.dh_n)
    want = reference.rnn_backward(p.dh, ref_cache, dh_n=p.dh_n)
    assert_grads_close(got, want, 0, 0, "reference cache")


def test_compiled_cache_rejected_by_reference_backward():
    p = _valid()
    _, cache = fastbptt.rnn_forward(*p.forward_args())
    with pytest.raises(TypeError, match="cache"):
        reference.rnn_backward(p.dh, cache, dh_n=p.dh_n)


@impl_param
@pytest.mark.parametrize("cache", [None, {}, (1, 2), "cache", np.ones(3)],
                         ids=["None", "dict", "tuple", "str", "ndarray"])
def test_backward_rejects_non_cache(cache, impl):
    _, backward = IMPLS[impl]
    with pytest.raises(TypeError, match="cache"):
        backward(np.ones((T_, B_, H_)), cache)


# ------------------------------------------------------------------ torch oracle

TORCH_SHAPES = [(6, 3, 4, 5), (5, 1, 3, 4), (4, 2, 3, 7)]   # plain, gemv, transposed step


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("shape", TORCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_torch(shape, nonlinearity, dtype, batch_first, bias):
    torch = pytest.importorskip("torch")
    T, B, I, H = shape
    p = make_problem(*shape, dtype, nonlinearity=nonlinearity, batch_first=batch_first,
                     bias=bias, seed=22)
    rnn = torch.nn.RNN(I, H, num_layers=1, nonlinearity=nonlinearity, bias=bias,
                       batch_first=batch_first, dtype=torch.float64 if dtype == np.float64
                       else torch.float32)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p.W_ih))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p.W_hh))
        if bias:
            rnn.bias_ih_l0.copy_(torch.from_numpy(p.b_ih))
            rnn.bias_hh_l0.copy_(torch.from_numpy(p.b_hh))
    x = torch.from_numpy(p.x.copy()).requires_grad_()
    h0 = torch.from_numpy(p.h0.copy()[None]).requires_grad_()
    out, h_n = rnn(x, h0)
    loss = (out * torch.from_numpy(p.dh)).sum() + (h_n[0] * torch.from_numpy(p.dh_n)).sum()
    loss.backward()

    h, grads = p.run("compiled")
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    atol = rtol if dtype == np.float64 else 1e-5
    assert_close(h, out.detach().numpy(), rtol, atol, err_msg="h")
    assert_close(last_state(h, batch_first), h_n[0].detach().numpy(), rtol, atol,
                 err_msg="h_n")
    expected = {"dx": x.grad, "dh0": h0.grad[0], "dW_ih": rnn.weight_ih_l0.grad,
                "dW_hh": rnn.weight_hh_l0.grad}
    if bias:
        expected.update(db_ih=rnn.bias_ih_l0.grad, db_hh=rnn.bias_hh_l0.grad)
    else:
        assert grads.db_ih is None and grads.db_hh is None
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.dtype == np.dtype(dtype)
        assert_close(got, value.numpy(), rtol, atol, err_msg=name)


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


def _run_with_lengths(p, lengths, impl):
    """(h, h_n, grads) of problem p with lengths; dh_n reaches the cache's h_n."""
    forward, backward = IMPLS[impl]
    h, cache = forward(*p.forward_args(), **p.forward_kwargs(), lengths=lengths)
    return h, cache.h_n, backward(p.dh, cache, dh_n=p.dh_n)


@length_param
@layout_param
@dtype_param
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("mode", list(MODES))
def test_lengths_match_reference(case, dtype, batch_first, nonlinearity, mode):
    *shape, lengths = case
    p = make_problem(*shape, dtype, nonlinearity=nonlinearity, batch_first=batch_first,
                     seed=5, **MODES[mode])
    h, h_n, grads = _run_with_lengths(p, np.array(lengths), "compiled")
    h_r, h_n_r, grads_r = _run_with_lengths(p, np.array(lengths), "reference")
    rtol, atol = tol_for(dtype)
    assert h.dtype == h_n.dtype == np.dtype(dtype)
    assert_close(h, h_r, rtol, atol, err_msg="h")
    assert_close(h_n, h_n_r, rtol, atol, err_msg="h_n")
    assert_grads_close(grads, grads_r, rtol, atol)


@impl_param
@length_param
@layout_param
def test_lengths_equal_separate_runs(case, batch_first, impl):
    """Each sequence alone, T = its length, gives its rows of every result; the shared
    parameters' gradients are the sums over the separate runs."""
    *shape, lengths = case
    p = make_problem(*shape, np.float64, batch_first=batch_first, seed=9)
    h, h_n, grads = _run_with_lengths(p, lengths, impl)
    forward, backward = IMPLS[impl]
    summed = {name: 0.0 for name in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    for b, n in enumerate(lengths):
        def seq(a):   # sequence b's first n steps, (n, 1, .) time-major
            a = a[b, :n] if batch_first else a[:n, b]
            return a[:, None]
        h_b, cache_b = forward(seq(p.x), p.h0[b:b + 1], p.W_ih, p.W_hh, p.b_ih, p.b_hh,
                               p.nonlinearity)
        g_b = backward(seq(p.dh), cache_b, dh_n=p.dh_n[b:b + 1])
        h_rows = h[b] if batch_first else h[:, b]
        dx_rows = grads.dx[b] if batch_first else grads.dx[:, b]
        np.testing.assert_allclose(h_rows[:n], h_b[:, 0], rtol=1e-12, atol=1e-12)
        assert not np.any(h_rows[n:]), "outputs past a length must be zero"
        np.testing.assert_allclose(h_n[b], cache_b.h_n[0], rtol=1e-12, atol=1e-12)
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
def test_lengths_finite_differences(batch_first, impl):
    lengths = np.array([3, 0, 1, 2])
    p = make_problem(3, 4, 2, 3, np.float64, batch_first=batch_first, seed=3)

    def loss_of(q):
        h, h_n, _ = _run_with_lengths(q, lengths, impl)
        return float(np.sum(h * q.dh) + np.sum(h_n * q.dh_n))

    _, _, grads = _run_with_lengths(p, lengths, impl)
    for grad_name, arg_name in zip(GRAD_NAMES, ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh")):
        base = getattr(p, arg_name)
        numeric = np.empty_like(base)
        for idx in np.ndindex(base.shape):
            values = []
            for sign in (1, -1):
                perturbed = base.copy()
                perturbed[idx] += sign * 1e-6
                values.append(loss_of(p.with_(**{arg_name: perturbed})))
            numeric[idx] = (values[0] - values[1]) / 2e-6
        err = relative_error(getattr(grads, grad_name), numeric)
        assert err < 1e-6, f"{grad_name}: relative error {err:.2e}"


@impl_param
def test_lengths_ignore_dh_past_the_end(impl):
    """dh at padded steps is ignored, even when it is not finite."""
    p = make_problem(4, 2, 3, 3, np.float64, seed=4)
    lengths = np.array([2, 4])
    dh = p.dh.copy()
    dh[2:, 0] = np.nan
    _, _, grads = _run_with_lengths(p.with_(dh=dh), lengths, impl)
    clean = p.dh.copy()
    clean[2:, 0] = 0
    _, _, expected = _run_with_lengths(p.with_(dh=clean), lengths, impl)
    assert_grads_close(grads, expected, 1e-14, 1e-14)


@impl_param
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_h_n_is_the_last_step_without_lengths(batch_first, impl):
    p = make_problem(5, 3, 2, 4, np.float64, batch_first=batch_first)
    forward, _ = IMPLS[impl]
    h, cache = forward(*p.forward_args(), **p.forward_kwargs())
    h_n = cache.h_n
    np.testing.assert_array_equal(h_n, last_state(h, batch_first))
    h_n[:] = 7   # a fresh array each time
    assert not np.any(cache.h_n == 7)


@impl_param
@pytest.mark.parametrize("lengths,exc,needle", [
    ([1, 2], ValueError, r"lengths must have shape \(B,\)"),
    ([[1, 2, 3]], ValueError, r"lengths must have shape"),
    ([1, 2, 6], ValueError, r"lengths must lie in \[0, T\]"),
    ([1, -1, 2], ValueError, r"lengths must lie in \[0, T\]"),
    ([1.0, 2.0, 3.0], TypeError, r"lengths must have an integer dtype"),
    ([True, False, True], TypeError, r"lengths must have an integer dtype"),
    ("abc", TypeError, r"lengths"),
], ids=["short", "2d", "above_T", "negative", "float", "bool", "str"])
def test_bad_lengths(lengths, exc, needle, impl):
    p = make_problem(5, 3, 2, 4, np.float64)
    forward, _ = IMPLS[impl]
    with pytest.raises(exc, match=needle):
        forward(*p.forward_args(), **p.forward_kwargs(), lengths=lengths)


@dtype_param
@layout_param
def test_lengths_match_torch_packed_sequence(dtype, batch_first):
    torch = pytest.importorskip("torch")
    T, B, I, H = 6, 4, 3, 5
    lengths = np.array([6, 2, 4, 1])
    p = make_problem(T, B, I, H, dtype, batch_first=batch_first, seed=31)
    rnn = torch.nn.RNN(I, H, batch_first=batch_first,
                       dtype=torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", p.W_ih), ("weight_hh_l0", p.W_hh),
                            ("bias_ih_l0", p.b_ih), ("bias_hh_l0", p.b_hh)):
            getattr(rnn, name).copy_(torch.from_numpy(value))
    x = torch.from_numpy(p.x.copy()).requires_grad_()
    h0 = torch.from_numpy(p.h0.copy()[None]).requires_grad_()
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
    out_packed, h_n = rnn(packed, h0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=batch_first,
                                                    total_length=T)
    loss = (out * torch.from_numpy(p.dh)).sum() + (h_n[0] * torch.from_numpy(p.dh_n)).sum()
    loss.backward()

    h, ours_h_n, grads = _run_with_lengths(p, lengths, "compiled")
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    atol = rtol if dtype == np.float64 else 1e-5
    assert_close(h, out.detach().numpy(), rtol, atol, err_msg="h")
    assert_close(ours_h_n, h_n[0].detach().numpy(), rtol, atol, err_msg="h_n")
    expected = {"dx": x.grad, "dh0": h0.grad[0], "dW_ih": rnn.weight_ih_l0.grad,
                "dW_hh": rnn.weight_hh_l0.grad, "db_ih": rnn.bias_ih_l0.grad,
                "db_hh": rnn.bias_hh_l0.grad}
    for name, value in expected.items():
        assert_close(getattr(grads, name), value.numpy(), rtol, atol, err_msg=name)
