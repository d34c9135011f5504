"""LSTM: the compiled fastbptt.lstm against its reference twin fastbptt.reference.lstm,
finite differences, a hand-computed case, layouts, variable lengths, strides, empty sizes,
bad input, and (when installed) torch.nn.LSTM.
"""
import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pytest

import fastbptt
import fastbptt.lstm as compiled
import fastbptt.reference.lstm as reference
import _helpers
from _helpers import (BAD_LENGTHS, DTYPES, assert_close, assert_matches_finite_differences,
                      raises_naming, tol_for)

IMPLS = {
    "compiled": (compiled.lstm_forward, compiled.lstm_backward),
    "reference": (reference.lstm_forward, reference.lstm_backward),
}

GRAD_NAMES = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")
ARG_NAMES = ("x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh")   # what each is a gradient of


@dataclass
class LSTMProblem:
    """One LSTM problem: forward inputs and the upstream gradients."""
    x: np.ndarray
    h0: Optional[np.ndarray]
    c0: Optional[np.ndarray]
    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: Optional[np.ndarray]
    b_hh: Optional[np.ndarray]
    dh: Optional[np.ndarray]        # like h, or None (many-to-one)
    dh_n: Optional[np.ndarray]      # (B, H) or None
    dc_n: Optional[np.ndarray]      # (B, H) or None
    batch_first: bool = False
    lengths: Optional[np.ndarray] = None

    def forward_args(self):
        return (self.x, self.h0, self.c0, self.W_ih, self.W_hh, self.b_ih, self.b_hh)

    def forward_kwargs(self):
        return {"batch_first": self.batch_first, "lengths": self.lengths}

    def forward(self, impl):
        forward, _ = IMPLS[impl]
        return forward(*self.forward_args(), **self.forward_kwargs())

    def run(self, impl="compiled"):
        """(h, h_n, c_n, grads) from one implementation."""
        _, backward = IMPLS[impl]
        h, cache = self.forward(impl)
        return h, cache.h_n, cache.c_n, backward(self.dh, cache, dh_n=self.dh_n,
                                                  dc_n=self.dc_n)

    def arrays(self):
        """Every array argument by name (None left out)."""
        names = ("x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh", "dh", "dh_n", "dc_n")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def with_(self, **changes):
        return replace(self, **changes)


def make_problem(T, B, I, H, dtype=np.float64, *, batch_first=False, bias=True, h0=True,
                 c0=True, dh=True, dh_n=True, dc_n=True, lengths=None, seed=0):
    """A random problem whose gates spread over their range (not saturated), with W_hh
    small enough that the recurrence contracts over long sequences."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    x = rand(B, T, I) if batch_first else rand(T, B, I)
    out_shape = (B, T, H) if batch_first else (T, B, H)
    return LSTMProblem(
        x=x,
        h0=rand(B, H, scale=0.5) if h0 else None,
        c0=rand(B, H, scale=0.5) if c0 else None,
        W_ih=rand(4 * H, I, scale=1.0 / np.sqrt(max(I, 1))),
        W_hh=rand(4 * H, H, scale=0.6 / np.sqrt(max(H, 1))),
        b_ih=rand(4 * H, scale=0.3) if bias else None,
        b_hh=rand(4 * H, scale=0.3) if bias else None,
        dh=rand(*out_shape) if dh else None,
        dh_n=rand(B, H) if dh_n else None,
        dc_n=rand(B, H) if dc_n else None,
        batch_first=batch_first,
        lengths=None if lengths is None else np.asarray(lengths),
    )


def loss(p, impl):
    """L = sum(h * dh) + sum(h_n * dh_n) + sum(c_n * dc_n): backward returns its gradient."""
    h, cache = p.forward(impl)
    total = 0.0
    for value, weight in ((h, p.dh), (cache.h_n, p.dh_n), (cache.c_n, p.dc_n)):
        if weight is not None:
            total += float(np.sum(value * weight))
    return total


def assert_grads_close(actual, expected, rtol, atol=None, err_msg=""):
    """Every field of two LSTMGrads agrees (None where the other is None)."""
    _helpers.assert_grads_close(actual, expected, rtol, atol, err_msg, names=GRAD_NAMES)


def _compare_to_reference(p, err_msg=""):
    h, h_n, c_n, grads = p.run("compiled")
    h_r, h_n_r, c_n_r, grads_r = p.run("reference")
    rtol, atol = tol_for(p.x.dtype)
    assert h.dtype == h_r.dtype == h_n.dtype == c_n.dtype == p.x.dtype
    assert_close(h, h_r, rtol, atol, err_msg=f"{err_msg} h")
    assert_close(h_n, h_n_r, rtol, atol, err_msg=f"{err_msg} h_n")
    assert_close(c_n, c_n_r, rtol, atol, err_msg=f"{err_msg} c_n")
    assert_grads_close(grads, grads_r, rtol, atol, err_msg=err_msg)


# (T, B, I, H). Chosen for the kernel's paths as well as the edge sizes:
#   B == 1: GEMV per step;  1 < B < H (float32): the transposed per-step GEMM;  otherwise
#   plain GEMM. batch-first dW_hh: one GEMM (B == 1), one per step (T <= B), one per
#   sequence (T > B).
SHAPES = [
    (1, 1, 1, 1),      # every size 1
    (1, 3, 5, 2),      # one step, B > H
    (7, 1, 3, 5),      # B = 1 (gemv), I != H
    (5, 4, 6, 3),      # B > H, batch-first T > B
    (13, 2, 1, 9),     # I = 1, transposed step
    (3, 6, 4, 5),      # batch-first T <= B
    (6, 5, 3, 5),      # B == H
    (4, 9, 3, 19),     # transposed step, B >= 8: 8 x 8 tiles of transpose.h and both edges
    (3, 16, 5, 24),    # transposed step: whole tiles only
    (300, 2, 8, 8),    # long sequence
]

MODES = {                       # which upstream gradients backward gets
    "many_to_many": dict(dh=True, dh_n=False, dc_n=False),
    "many_to_one": dict(dh=False, dh_n=True, dc_n=False),
    "final_c_only": dict(dh=False, dh_n=False, dc_n=True),
    "all": dict(dh=True, dh_n=True, dc_n=True),
}

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
layout_param = pytest.mark.parametrize("batch_first", [False, True],
                                       ids=["time_major", "batch_first"])
shape_param = pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
impl_param = pytest.mark.parametrize("impl", list(IMPLS))


def _always_transposed(monkeypatch):
    """Run the transposed per-step GEMM in float64 too wherever float32 would run it (the
    wrapper would choose the plain one), so that path is also held to float64
    tolerances."""
    policy = compiled.step_form
    monkeypatch.setattr(compiled, "step_form",
                        lambda cell, B, H, dtype: policy(cell, B, H, np.float32))


# ------------------------------------------------------------------ compiled == reference

@pytest.mark.parametrize("mode", list(MODES))
@layout_param
@dtype_param
@shape_param
def test_matches_reference(shape, dtype, batch_first, mode):
    p = make_problem(*shape, dtype, batch_first=batch_first, **MODES[mode], seed=sum(shape))
    _compare_to_reference(p)


@pytest.mark.parametrize("states", ["h0_c0", "None", "h0_only", "c0_only"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@pytest.mark.parametrize("shape", [(5, 4, 6, 3), (7, 1, 3, 5), (4, 9, 3, 19)],
                         ids=lambda s: "x".join(map(str, s)))
def test_matches_reference_bias_and_initial_states(shape, dtype, batch_first, bias, states):
    p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias,
                     h0=states in ("h0_c0", "h0_only"), c0=states in ("h0_c0", "c0_only"),
                     seed=1 + sum(shape))
    _compare_to_reference(p)
    *_, grads = p.run("compiled")
    if not bias:
        assert grads.db_ih is None and grads.db_hh is None
    else:
        np.testing.assert_array_equal(grads.db_ih, grads.db_hh)


@pytest.mark.parametrize("mode", ["many_to_many", "all"])
@layout_param
@pytest.mark.parametrize("shape", [(13, 2, 1, 9), (4, 9, 3, 19), (3, 16, 5, 24)],
                         ids=lambda s: "x".join(map(str, s)))
def test_transposed_step_in_float64(shape, batch_first, mode, monkeypatch):
    _always_transposed(monkeypatch)
    p = make_problem(*shape, np.float64, batch_first=batch_first, **MODES[mode], seed=2)
    _compare_to_reference(p)


# ------------------------------------------------------------------ finite differences

FD_SHAPES = [(4, 3, 2, 3), (3, 1, 2, 4), (5, 2, 3, 4)]   # plain GEMM, GEMV, transposed


def _check_finite_differences(p, impl):
    *_, grads = p.run(impl)
    assert_matches_finite_differences(grads, p, impl, zip(GRAD_NAMES, ARG_NAMES), loss)


@impl_param
@layout_param
@pytest.mark.parametrize("shape", FD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gradients_match_finite_differences(shape, batch_first, impl, monkeypatch):
    _always_transposed(monkeypatch)
    p = make_problem(*shape, np.float64, batch_first=batch_first, seed=3)
    _check_finite_differences(p, impl)


@impl_param
@layout_param
def test_gradients_with_lengths_match_finite_differences(batch_first, impl, monkeypatch):
    _always_transposed(monkeypatch)
    p = make_problem(3, 4, 2, 5, np.float64, batch_first=batch_first, lengths=[3, 0, 1, 2],
                     seed=4)
    _check_finite_differences(p, impl)


# ------------------------------------------------------------------ dtypes

@impl_param
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@pytest.mark.parametrize("shape", [(4, 3, 2, 5), (3, 1, 4, 2), (0, 2, 3, 4), (3, 2, 0, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_dtype_in_is_dtype_out(shape, dtype, batch_first, bias, impl):
    for mode in MODES.values():
        p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, h0=False,
                         c0=False, **mode)
        h, h_n, c_n, grads = p.run(impl)
        assert h.dtype == h_n.dtype == c_n.dtype == np.dtype(dtype)
        for name in GRAD_NAMES:
            g = getattr(grads, name)
            if name.startswith("db") and not bias:
                assert g is None
            else:
                assert g.dtype == np.dtype(dtype), f"{name} is {g.dtype}"


# ------------------------------------------------------------------ a case by hand

def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


@impl_param
@dtype_param
def test_hand_computed_two_steps(dtype, impl):
    """T = 2, B = I = H = 1, every equation written out."""
    w_ih = [0.5, -0.25, 0.75, 1.0]     # i, f, g, o
    w_hh = [-0.5, 0.25, 0.5, -0.75]
    b = [0.125, 0.25, -0.125, 0.0625]  # b_ih; b_hh = 0
    x = [1.0, -2.0]
    h_prev, c_prev = 0.375, -0.5
    gh = [0.5, -1.0]                   # dL/dh_t from the loss
    gh_n, gc_n = 2.0, -1.5             # dL/dh_2, dL/dc_2 from outside

    steps = []
    for t in range(2):
        z = [w_ih[k] * x[t] + w_hh[k] * h_prev + b[k] for k in range(4)]
        i, f, g, o = _sigmoid(z[0]), _sigmoid(z[1]), math.tanh(z[2]), _sigmoid(z[3])
        c = f * c_prev + i * g
        h = o * math.tanh(c)
        steps.append(dict(i=i, f=f, g=g, o=o, c=c, h=h, h_prev=h_prev, c_prev=c_prev))
        h_prev, c_prev = h, c
    dh, dc = gh_n, gc_n
    dz = [None, None]
    for t in (1, 0):
        s = steps[t]
        dh += gh[t]
        tc = math.tanh(s["c"])
        dc += dh * s["o"] * (1 - tc ** 2)
        dz[t] = [dc * s["g"] * s["i"] * (1 - s["i"]), dc * s["c_prev"] * s["f"] * (1 - s["f"]),
                 dc * s["i"] * (1 - s["g"] ** 2), dh * tc * s["o"] * (1 - s["o"])]
        dh = sum(dz[t][k] * w_hh[k] for k in range(4))
        dc = dc * s["f"]
    h0 = steps[0]["h_prev"]
    expected = {
        "dx": [[[sum(dz[t][k] * w_ih[k] for k in range(4))]] for t in range(2)],
        "dh0": [[dh]],
        "dc0": [[dc]],
        "dW_ih": [[dz[0][k] * x[0] + dz[1][k] * x[1]] for k in range(4)],
        "dW_hh": [[dz[0][k] * h0 + dz[1][k] * steps[0]["h"]] for k in range(4)],
        "db_ih": [dz[0][k] + dz[1][k] for k in range(4)],
        "db_hh": [dz[0][k] + dz[1][k] for k in range(4)],
    }

    def arr(v):
        return np.array(v, dtype)

    forward, backward = IMPLS[impl]
    h, cache = forward(arr([[[x[0]]], [[x[1]]]]), arr([[0.375]]), arr([[-0.5]]),
                       arr([[w] for w in w_ih]), arr([[w] for w in w_hh]), arr(b),
                       arr([0.0] * 4))
    grads = backward(arr([[[gh[0]]], [[gh[1]]]]), cache, dh_n=arr([[gh_n]]),
                     dc_n=arr([[gc_n]]))
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(h, [[[steps[0]["h"]]], [[steps[1]["h"]]]], rtol=rtol)
    np.testing.assert_allclose(cache.h_n, [[steps[1]["h"]]], rtol=rtol)
    np.testing.assert_allclose(cache.c_n, [[steps[1]["c"]]], rtol=rtol)
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.shape == np.shape(value), name
        np.testing.assert_allclose(got, value, rtol=rtol, atol=rtol, err_msg=name)


# ------------------------------------------------------------------ layouts

@impl_param
@pytest.mark.parametrize("mode", ["many_to_one", "all"])
@dtype_param
@pytest.mark.parametrize("shape", [(7, 1, 3, 5), (5, 4, 6, 3), (3, 6, 4, 5), (4, 9, 3, 19)],
                         ids=lambda s: "x".join(map(str, s)))
def test_batch_first_is_the_transpose_of_time_major(shape, dtype, mode, impl):
    """The same problem in the other layout: the same numbers, up to the summation order
    of differently shaped GEMMs."""
    tm = make_problem(*shape, dtype, **MODES[mode], seed=5)
    bf = tm.with_(x=np.ascontiguousarray(tm.x.transpose(1, 0, 2)),
                  dh=None if tm.dh is None else np.ascontiguousarray(tm.dh.transpose(1, 0, 2)),
                  batch_first=True)
    h_tm, h_n_tm, c_n_tm, g_tm = tm.run(impl)
    h_bf, h_n_bf, c_n_bf, g_bf = bf.run(impl)
    T, B, I, H = shape
    assert h_bf.shape == (B, T, H) and g_bf.dx.shape == (B, T, I)
    ulps = 64 * np.finfo(dtype).eps
    assert_close(h_bf, h_tm.transpose(1, 0, 2), ulps, err_msg="h")
    assert_close(h_n_bf, h_n_tm, ulps, err_msg="h_n")
    assert_close(c_n_bf, c_n_tm, ulps, err_msg="c_n")
    assert_close(g_bf.dx, g_tm.dx.transpose(1, 0, 2), ulps, err_msg="dx")
    for name in GRAD_NAMES[1:]:
        assert_close(getattr(g_bf, name), getattr(g_tm, name), ulps, err_msg=name)


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
@pytest.mark.parametrize("mode", list(MODES))
def test_lengths_match_reference(case, dtype, batch_first, mode):
    *shape, lengths = case
    p = make_problem(*shape, dtype, batch_first=batch_first, lengths=lengths, seed=5,
                     **MODES[mode])
    _compare_to_reference(p)


@impl_param
@length_param
@layout_param
def test_lengths_equal_separate_runs(case, batch_first, impl, monkeypatch):
    """Each sequence alone, T = its length, gives its rows of every result; the shared
    parameters' gradients are the sums over the separate runs."""
    _always_transposed(monkeypatch)
    *shape, lengths = case
    p = make_problem(*shape, np.float64, batch_first=batch_first, lengths=lengths, seed=9)
    h, h_n, c_n, grads = p.run(impl)
    summed = {name: 0.0 for name in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    for b, n in enumerate(lengths):
        def seq(a):   # sequence b's first n steps, (n, 1, .) time-major
            a = a[b, :n] if batch_first else a[:n, b]
            return a[:, None]
        alone = p.with_(x=seq(p.x), h0=p.h0[b:b + 1], c0=p.c0[b:b + 1], dh=seq(p.dh),
                        dh_n=p.dh_n[b:b + 1], dc_n=p.dc_n[b:b + 1], batch_first=False,
                        lengths=None)
        h_b, h_n_b, c_n_b, g_b = alone.run(impl)
        h_rows = h[b] if batch_first else h[:, b]
        dx_rows = grads.dx[b] if batch_first else grads.dx[:, b]
        np.testing.assert_allclose(h_rows[:n], h_b[:, 0], rtol=1e-12, atol=1e-12)
        assert not np.any(h_rows[n:]), "outputs past a length must be zero"
        np.testing.assert_allclose(h_n[b], h_n_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c_n[b], c_n_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx_rows[:n], g_b.dx[:, 0], rtol=1e-12, atol=1e-12)
        assert not np.any(dx_rows[n:]), "dx past a length must be zero"
        np.testing.assert_allclose(grads.dh0[b], g_b.dh0[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grads.dc0[b], g_b.dc0[0], rtol=1e-12, atol=1e-12)
        for name in summed:
            summed[name] = summed[name] + getattr(g_b, name)
    for name, value in summed.items():
        np.testing.assert_allclose(getattr(grads, name), value, rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@impl_param
def test_length_zero_passes_the_states_and_their_gradients_through(impl):
    p = make_problem(4, 3, 2, 5, np.float64, lengths=[0, 0, 0], seed=6)
    h, h_n, c_n, grads = p.run(impl)
    assert not np.any(h)
    np.testing.assert_array_equal(h_n, p.h0)
    np.testing.assert_array_equal(c_n, p.c0)
    np.testing.assert_array_equal(grads.dh0, p.dh_n)
    np.testing.assert_array_equal(grads.dc0, p.dc_n)
    for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert not np.any(getattr(grads, name)), name


@impl_param
@pytest.mark.parametrize("shape", [(4, 2, 3, 3), (4, 2, 3, 9)], ids=["plain", "transposed"])
def test_lengths_ignore_dh_past_the_end(shape, impl):
    """dh at padded steps is ignored, even when it is not finite."""
    p = make_problem(*shape, np.float32, lengths=[2, 4], seed=4)
    dh = p.dh.copy()
    dh[2:, 0] = np.nan
    *_, grads = p.with_(dh=dh).run(impl)
    clean = p.dh.copy()
    clean[2:, 0] = 0
    *_, expected = p.with_(dh=clean).run(impl)
    assert_grads_close(grads, expected, 0, 0)


@impl_param
@layout_param
def test_final_states_without_lengths(batch_first, impl):
    p = make_problem(5, 3, 2, 4, np.float64, batch_first=batch_first)
    h, cache = p.forward(impl)
    h_n, c_n = cache.h_n, cache.c_n
    np.testing.assert_array_equal(h_n, h[:, -1] if batch_first else h[-1])
    assert c_n.shape == (3, 4) and c_n.flags.c_contiguous
    h_n[:] = 7   # fresh arrays each time
    c_n[:] = 7
    assert not np.any(cache.h_n == 7) and not np.any(cache.c_n == 7)
    for name in ("h_n", "c_n"):
        with pytest.raises(AttributeError):
            setattr(cache, name, h_n)


@impl_param
@pytest.mark.parametrize("lengths,exc,needle", [c[1:] for c in BAD_LENGTHS],
                         ids=[c[0] for c in BAD_LENGTHS])
def test_bad_lengths(lengths, exc, needle, impl):
    p = make_problem(5, 3, 2, 4, np.float64).with_(lengths=lengths)
    with pytest.raises(exc, match=needle):
        p.forward(impl)


# ------------------------------------------------------------------ strides and aliasing

def _noncontiguous(a, kind):
    """a's values in another memory layout."""
    if kind == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    if kind == "sliced":
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    if kind == "fortran":
        return np.asfortranarray(a)
    ro = a.copy()
    ro.setflags(write=False)
    return ro


@impl_param
@layout_param
@pytest.mark.parametrize("kind", ["reversed", "sliced", "fortran", "read_only"])
def test_noncontiguous_arguments_give_the_same_answer(kind, batch_first, impl):
    p = make_problem(5, 3, 4, 6, np.float64, batch_first=batch_first, seed=11)
    h, h_n, c_n, grads = p.run(impl)
    views = {name: _noncontiguous(a, kind) for name, a in p.arrays().items()}
    h2, h_n2, c_n2, grads2 = p.with_(**views).run(impl)
    for name, a, b in [("h", h2, h), ("h_n", h_n2, h_n), ("c_n", c_n2, c_n),
                       *((n, getattr(grads2, n), getattr(grads, n)) for n in GRAD_NAMES)]:
        np.testing.assert_array_equal(a, b, err_msg=name)


@impl_param
@layout_param
@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (4, 1, 3, 5), (4, 9, 3, 19)],
                         ids=lambda s: "x".join(map(str, s)))
def test_caller_arrays_are_never_modified(shape, batch_first, impl):
    p = make_problem(*shape, np.float32, batch_first=batch_first, seed=14)
    for q in (p, p.with_(lengths=np.arange(shape[1]) % (shape[0] + 1))):
        before = {n: a.copy() for n, a in q.arrays().items()}
        _, backward = IMPLS[impl]
        _, cache = q.forward(impl)
        for n, a in q.arrays().items():
            np.testing.assert_array_equal(a, before[n], err_msg=f"forward wrote into {n}")
        backward(q.dh, cache, dh_n=q.dh_n, dc_n=q.dc_n)
        backward(None, cache, dh_n=q.dh_n)
        backward(None, cache, dc_n=q.dc_n)
        backward(q.dh, cache)
        for n, a in q.arrays().items():
            np.testing.assert_array_equal(a, before[n], err_msg=f"backward wrote into {n}")


@impl_param
@layout_param
@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (4, 1, 3, 5), (1, 1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_outputs_are_fresh_and_backward_repeatable(shape, batch_first, impl):
    p = make_problem(*shape, np.float64, batch_first=batch_first, seed=17)
    _, backward = IMPLS[impl]
    h, cache = p.forward(impl)
    first = backward(p.dh, cache, dh_n=p.dh_n, dc_n=p.dc_n)
    outputs = {"h": h, "h_n": cache.h_n, "c_n": cache.c_n, **first._asdict()}
    for on, o in outputs.items():
        assert isinstance(o, np.ndarray) and o.flags.c_contiguous and o.flags.writeable, on
        for iname, i in p.arrays().items():
            assert not np.shares_memory(o, i), f"{on} aliases the input {iname}"
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.shares_memory(outputs[a], outputs[b]), f"{a} aliases {b}"
    saved = [g.copy() for g in first]
    h[...] = 0.5           # results are the caller's: scribbling on them changes nothing
    for g in first:
        g[...] = np.nan
    second = backward(p.dh, cache, dh_n=p.dh_n, dc_n=p.dc_n)
    for name, a, b in zip(GRAD_NAMES, saved, second):
        np.testing.assert_array_equal(b, a, err_msg=name)


# ------------------------------------------------------------------ empty sizes

EMPTY_SHAPES = [(0, 2, 3, 4), (3, 0, 2, 4), (3, 2, 0, 4), (3, 2, 3, 0), (0, 0, 0, 0)]


@pytest.mark.parametrize("mode", ["many_to_many", "all"])
@layout_param
@dtype_param
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty_sizes(shape, dtype, batch_first, mode):
    T, B, I, H = shape
    p = make_problem(*shape, dtype, batch_first=batch_first, **MODES[mode], seed=18)
    h, h_n, c_n, grads = p.run("compiled")
    h_r, h_n_r, c_n_r, grads_r = p.run("reference")
    assert h.shape == ((B, T, H) if batch_first else (T, B, H))
    expected_shapes = {"dx": p.x.shape, "dh0": (B, H), "dc0": (B, H), "dW_ih": (4 * H, I),
                       "dW_hh": (4 * H, H), "db_ih": (4 * H,), "db_hh": (4 * H,)}
    for name, s in expected_shapes.items():
        assert getattr(grads, name).shape == s, name
        assert getattr(grads, name).dtype == np.dtype(dtype), name
    np.testing.assert_array_equal(h, h_r)
    np.testing.assert_array_equal(h_n, h_n_r)
    np.testing.assert_array_equal(c_n, c_n_r)
    for name in GRAD_NAMES:
        np.testing.assert_array_equal(getattr(grads, name), getattr(grads_r, name), name)
    if T == 0 or B == 0:
        # Nothing flows through any step: zero gradients, the final states' gradients
        # pass straight back to the initial states.
        np.testing.assert_array_equal(h_n, p.h0)
        np.testing.assert_array_equal(c_n, p.c0)
        for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
            assert not np.any(getattr(grads, name)), name
        np.testing.assert_array_equal(grads.dh0, p.dh_n if p.dh_n is not None else 0)
        np.testing.assert_array_equal(grads.dc0, p.dc_n if p.dc_n is not None else 0)


@dtype_param
def test_no_input_features_is_a_zero_input(dtype):
    """I = 0 (run by the empty-problem path) equals I = 1 with x = 0 (the kernels)."""
    T, B, H = 4, 3, 5
    p0 = make_problem(T, B, 0, H, dtype, seed=19)
    p1 = p0.with_(x=np.zeros((T, B, 1), dtype), W_ih=np.full((4 * H, 1), 0.7, dtype))
    h0_, _, c_n0, g0 = p0.run("compiled")
    h1_, _, c_n1, g1 = p1.run("compiled")
    rtol, atol = tol_for(dtype)
    assert_close(h0_, h1_, rtol, atol)
    assert_close(c_n0, c_n1, rtol, atol)
    for name in ("dh0", "dc0", "dW_hh", "db_ih", "db_hh"):
        assert_close(getattr(g0, name), getattr(g1, name), rtol, atol, err_msg=name)
    assert g0.dx.shape == p0.x.shape and g0.dW_ih.shape == (4 * H, 0)


# ------------------------------------------------------------------ bad input

# A valid problem: T = 3 != B = 2, so a layout mix-up changes the expected shapes.
T_, B_, I_, H_ = 3, 2, 4, 5
G_ = 4 * H_


def _valid(batch_first=False):
    return make_problem(T_, B_, I_, H_, np.float64, batch_first=batch_first, seed=20)


f32 = np.float32

# (id, changes to the valid problem, exception, substrings the message must contain)
FORWARD_ERRORS = [
    ("x_2d", dict(x=np.ones((T_, I_))), ValueError, ["x", "3-D"]),
    ("h0_3d", dict(h0=np.ones((1, B_, H_))), ValueError, ["h0", "2-D"]),
    ("c0_1d", dict(c0=np.ones(H_)), ValueError, ["c0", "2-D"]),
    ("W_ih_1d", dict(W_ih=np.ones(G_)), ValueError, ["W_ih", "2-D"]),
    ("W_hh_3d", dict(W_hh=np.ones((1, G_, H_))), ValueError, ["W_hh", "2-D"]),
    ("b_ih_2d", dict(b_ih=np.ones((1, G_))), ValueError, ["b_ih", "1-D"]),
    ("W_ih_wrong_I", dict(W_ih=np.ones((G_, I_ + 1))), ValueError, ["W_ih", r"\(4\*H, I\)"]),
    ("W_ih_one_gate", dict(W_ih=np.ones((H_, I_))), ValueError, ["W_ih", r"\(4\*H, I\)"]),
    ("W_hh_one_gate", dict(W_hh=np.ones((H_, H_))), ValueError, ["W_hh", r"\(4\*H, H\)"]),
    ("b_ih_one_gate", dict(b_ih=np.ones(H_)), ValueError, ["b_ih", r"\(4\*H,\)"]),
    ("b_hh_long", dict(b_hh=np.ones(G_ + 1)), ValueError, ["b_hh", r"\(4\*H,\)"]),
    ("h0_wrong_B", dict(h0=np.ones((B_ + 1, H_))), ValueError, ["h0", r"\(B, H\)"]),
    ("c0_wrong_H", dict(c0=np.ones((B_, H_ + 1))), ValueError, ["c0", r"\(B, H\)"]),
    ("c0_transposed", dict(c0=np.ones((H_, B_))), ValueError, ["c0", r"\(B, H\)"]),
    ("x_time_major_with_batch_first", dict(batch_first=True), ValueError, ["h0", r"\(B, H\)"]),
    ("h0_f32", dict(h0=np.ones((B_, H_), f32)), TypeError, ["h0", r"\bx\b", "float32"]),
    ("c0_f32", dict(c0=np.ones((B_, H_), f32)), TypeError, ["c0", r"\bx\b", "float32"]),
    ("W_hh_f32", dict(W_hh=np.ones((G_, H_), f32)), TypeError, ["W_hh", r"\bx\b", "float32"]),
    ("b_hh_f32", dict(b_hh=np.ones(G_, f32)), TypeError, ["b_hh", r"\bx\b", "float32"]),
    ("x_int", dict(x=np.ones((T_, B_, I_), np.int64)), TypeError, ["x", "float32 or float64"]),
    ("x_bool", dict(x=np.ones((T_, B_, I_), bool)), TypeError, ["x", "bool"]),
    ("W_ih_int", dict(W_ih=np.ones((G_, I_), np.int32)), TypeError, ["W_ih", "int32"]),
    ("c0_complex", dict(c0=np.ones((B_, H_), complex)), TypeError, ["c0", "complex"]),
    ("x_ragged_list", dict(x=[[[1.0]], [[1.0, 2.0]]]), TypeError, ["x"]),
    ("only_b_ih", dict(b_hh=None), ValueError, ["b_ih", "b_hh"]),
    ("batch_first_int", dict(batch_first=1), TypeError, ["batch_first"]),
    ("empty_T_c0_wrong", dict(x=np.ones((0, B_, I_)), c0=np.ones((B_ + 1, H_))),
     ValueError, ["c0"]),
    ("empty_T_f32_W_hh", dict(x=np.ones((0, B_, I_)), W_hh=np.ones((G_, H_), f32)),
     TypeError, ["W_hh", r"\bx\b"]),
]


@impl_param
@pytest.mark.parametrize("changes,exc,needles", [c[1:] for c in FORWARD_ERRORS],
                         ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_rejects_bad_input(changes, exc, needles, impl):
    p = _valid().with_(**changes)
    raises_naming(exc, needles, lambda: p.forward(impl))


# (id, batch_first of the forward pass, dh, dh_n, dc_n, exception, message substrings)
BACKWARD_ERRORS = [
    ("all_None", False, None, None, None, ValueError, ["dh", "dh_n", "dc_n"]),
    ("dh_2d", False, np.ones((T_ * B_, H_)), None, None, ValueError, ["dh", "3-D"]),
    ("dh_wrong_T", False, np.ones((T_ + 1, B_, H_)), None, None, ValueError,
     ["dh", r"\(T, B, H\)"]),
    ("dh_batch_first_given_time_major", True, np.ones((T_, B_, H_)), None, None, ValueError,
     ["dh", r"\(B, T, H\)"]),
    ("dh_n_wrong_B", False, None, np.ones((B_ + 1, H_)), None, ValueError,
     ["dh_n", r"\(B, H\)"]),
    ("dc_n_wrong_H", False, None, None, np.ones((B_, H_ - 1)), ValueError,
     ["dc_n", r"\(B, H\)"]),
    ("dc_n_3d", False, None, None, np.ones((1, B_, H_)), ValueError, ["dc_n", "2-D"]),
    ("dh_f32", False, np.ones((T_, B_, H_), f32), None, None, TypeError,
     ["dh", r"\bx\b", "float32"]),
    ("dc_n_f32", False, None, None, np.ones((B_, H_), f32), TypeError,
     ["dc_n", r"\bx\b", "float32"]),
    ("dc_n_int", False, None, None, np.ones((B_, H_), int), TypeError,
     ["dc_n", "float32 or float64"]),
    ("dh_n_bool", False, None, np.ones((B_, H_), bool), None, TypeError, ["dh_n", "bool"]),
]


@impl_param
@pytest.mark.parametrize("batch_first,dh,dh_n,dc_n,exc,needles",
                         [c[1:] for c in BACKWARD_ERRORS], ids=[c[0] for c in BACKWARD_ERRORS])
def test_backward_rejects_bad_input(batch_first, dh, dh_n, dc_n, exc, needles, impl):
    p = _valid(batch_first)
    _, backward = IMPLS[impl]
    _, cache = p.forward(impl)
    raises_naming(exc, needles, lambda: backward(dh, cache, dh_n=dh_n, dc_n=dc_n))


@pytest.mark.parametrize("shape", [(T_, B_, I_, H_), (0, B_, I_, H_)], ids=["full", "empty"])
@pytest.mark.parametrize("impl", ["reference"])
def test_cache_of_the_other_implementation_is_rejected(impl, shape):
    # (fastbptt.lstm_backward takes a reference cache: the backend switch sends it to the
    # reference backward; tests/test_backend.py)
    p = make_problem(*shape, seed=21)
    other = "reference" if impl == "compiled" else "compiled"
    _, cache = p.forward(other)
    _, backward = IMPLS[impl]
    with pytest.raises(TypeError, match="cache"):
        backward(p.dh, cache, dh_n=p.dh_n, dc_n=p.dc_n)


@impl_param
@pytest.mark.parametrize("cache", [None, {}, (1, 2), np.ones(3)],
                         ids=["None", "dict", "tuple", "ndarray"])
def test_backward_rejects_non_cache(cache, impl):
    _, backward = IMPLS[impl]
    with pytest.raises(TypeError, match="cache"):
        backward(np.ones((T_, B_, H_)), cache)


def test_rnn_cache_is_rejected():
    _, rnn_cache = fastbptt.rnn_forward(np.ones((T_, B_, I_)), None, np.ones((H_, I_)),
                                        np.ones((H_, H_)))
    with pytest.raises(TypeError, match="cache"):
        compiled.lstm_backward(np.ones((T_, B_, H_)), rnn_cache)


# ------------------------------------------------------------------ torch oracle

TORCH_SHAPES = [(6, 3, 4, 5), (5, 1, 3, 4), (4, 9, 3, 19)]   # plain, gemv, transposed


def _torch_lstm(torch, p, bias):
    T, B, I = p.x.shape if not p.batch_first else (p.x.shape[1], p.x.shape[0], p.x.shape[2])
    H = p.W_hh.shape[1]
    lstm = torch.nn.LSTM(I, H, num_layers=1, bias=bias, batch_first=p.batch_first,
                         dtype=torch.float64 if p.x.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(p.W_ih))
        lstm.weight_hh_l0.copy_(torch.from_numpy(p.W_hh))
        if bias:
            lstm.bias_ih_l0.copy_(torch.from_numpy(p.b_ih))
            lstm.bias_hh_l0.copy_(torch.from_numpy(p.b_hh))
    return lstm


def _check_against_torch(torch, p, bias):
    lstm = _torch_lstm(torch, p, bias)
    T = p.x.shape[1] if p.batch_first else p.x.shape[0]
    x = torch.from_numpy(p.x.copy()).requires_grad_()
    h0 = torch.from_numpy(p.h0.copy()[None]).requires_grad_()
    c0 = torch.from_numpy(p.c0.copy()[None]).requires_grad_()
    if p.lengths is None:
        out, (h_n, c_n) = lstm(x, (h0, c0))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.from_numpy(p.lengths), batch_first=p.batch_first, enforce_sorted=False)
        out_packed, (h_n, c_n) = lstm(packed, (h0, c0))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=p.batch_first,
                                                        total_length=T)
    loss = ((out * torch.from_numpy(p.dh)).sum() + (h_n[0] * torch.from_numpy(p.dh_n)).sum()
            + (c_n[0] * torch.from_numpy(p.dc_n)).sum())
    loss.backward()

    h, ours_h_n, ours_c_n, grads = p.run("compiled")
    rtol = 1e-9 if p.x.dtype == np.float64 else 1e-4
    atol = rtol if p.x.dtype == np.float64 else 1e-5
    assert_close(h, out.detach().numpy(), rtol, atol, err_msg="h")
    assert_close(ours_h_n, h_n[0].detach().numpy(), rtol, atol, err_msg="h_n")
    assert_close(ours_c_n, c_n[0].detach().numpy(), rtol, atol, err_msg="c_n")
    expected = {"dx": x.grad, "dh0": h0.grad[0], "dc0": c0.grad[0],
                "dW_ih": lstm.weight_ih_l0.grad, "dW_hh": lstm.weight_hh_l0.grad}
    if bias:
        expected.update(db_ih=lstm.bias_ih_l0.grad, db_hh=lstm.bias_hh_l0.grad)
    else:
        assert grads.db_ih is None and grads.db_hh is None
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.dtype == p.x.dtype
        assert_close(got, value.numpy(), rtol, atol, err_msg=name)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@layout_param
@dtype_param
@pytest.mark.parametrize("shape", TORCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_torch(shape, dtype, batch_first, bias):
    torch = pytest.importorskip("torch")
    p = make_problem(*shape, dtype, batch_first=batch_first, bias=bias, seed=22)
    _check_against_torch(torch, p, bias)


# pack_padded_sequence refuses empty sequences, so no length 0 here (the separate-runs
# test covers it).
@layout_param
@dtype_param
@pytest.mark.parametrize("case", [(6, 4, 3, 5, [6, 2, 4, 1]),
                                  (5, 9, 2, 11, [5, 1, 1, 3, 5, 2, 4, 4, 1])],
                         ids=["plain", "transposed"])
def test_lengths_match_torch_packed_sequence(case, dtype, batch_first):
    torch = pytest.importorskip("torch")
    *shape, lengths = case
    p = make_problem(*shape, dtype, batch_first=batch_first, lengths=lengths, seed=31)
    _check_against_torch(torch, p, True)
