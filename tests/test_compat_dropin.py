"""The less tidy idioms of real CS231n solutions and of the min-char-rnn script, which
fastbptt.compat takes as the originals do (issue 19): scalar, 1-D and N-D embedding
indices, step functions on inputs that broadcast, NumPy's promotion of mixed and integer
dtypes, the sequence cache used as a list of step caches, CaptioningRNN's sampling loop,
and min-char-rnn's lossFun reading the script's globals. Each against course-style NumPy
(_cs231n_course.py; the min-char-rnn script verbatim, _minchar_script.py), and float64 central
differences for every gradient path these add."""
import types

import numpy as np
import pytest

import _cs231n_course as _course
from _cs231n_course import (
    check_fd,
    numeric_gradient,
    o_lstm_step_backward,
    o_lstm_step_forward,
    o_rnn_step_backward,
    o_rnn_step_forward,
    o_temporal_affine_forward,
    o_temporal_softmax_loss,
    o_word_embedding_backward,
    o_word_embedding_forward,
)
from _helpers import raises_naming, relative_error
from _minchar_script import script_namespace
from fastbptt.cells.spec import get_spec
from fastbptt.compat import cs231n, minchar

GATES = {cell: get_spec(cell).gates for cell in ("rnn", "lstm")}   # the course's two cells


def _has_c(cell):
    """Whether the cell carries a cell state c (its step functions take prev_c)."""
    return "c" in get_spec(cell).states
DX_SEQ = 4   # D of _seq_problem


def _arrays(seed, *shapes, dtype=np.float64, scale=0.5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]


def _close(got, want, tol, what):
    """Same shape and dtype as the course's result, values to tol (relative)."""
    assert len(got) == len(want), what
    for k, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}[{k}]: shape {a.shape}, the course's {b.shape}"
        assert a.dtype == b.dtype, f"{what}[{k}]: dtype {a.dtype}, the course's {b.dtype}"
        err = relative_error(a.astype(np.float64), b.astype(np.float64))
        assert err < tol, f"{what}[{k}]: relative error {err:.2e}"


def _step(cell, impl):
    """(forward, backward) step functions of cs231n ("compat") or the course."""
    if impl == "compat":
        return getattr(cs231n, f"{cell}_step_forward"), getattr(cs231n, f"{cell}_step_backward")
    return getattr(_course, f"o_{cell}_step_forward"), getattr(_course, f"o_{cell}_step_backward")


def _step_call(cell, impl, x, h, c, Wx, Wh, b):
    forward = _step(cell, impl)[0]
    return forward(x, h, Wx, Wh, b) if not _has_c(cell) else forward(x, h, c, Wx, Wh, b)


def _course_steps(cell, x, h0, Wx, Wh, b):
    """The course's forward loop, its step results stacked (so h keeps the steps' dtype):
    h (N, T, H) and the list of step caches."""
    h, c, hs, caches = h0, np.zeros_like(h0), [], []
    for t in range(x.shape[1]):
        if not _has_c(cell):
            h, cache = o_rnn_step_forward(x[:, t], h, Wx, Wh, b)
        else:
            h, c, cache = o_lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def _course_backward(cell, dh, caches):
    return getattr(_course, f"o_{cell}_backward")(dh, caches)


def _seq(cell):
    return getattr(cs231n, f"{cell}_forward"), getattr(cs231n, f"{cell}_backward")


def _seq_problem(cell, N=3, T=5, D=4, H=6, seed=0, dtype=np.float64):
    G = GATES[cell]
    return _arrays(seed, (N, T, D), (N, H), (D, G * H), (H, G * H), (G * H,), (N, T, H),
                   dtype=dtype)


# ------------------------------------------------------------------ word embedding

V, D = 7, 3
INDICES = {
    "python_int": 4,                       # word_embedding_forward(self._start, W_embed)
    "numpy_int": np.int32(2),
    "negative_int": -1,                    # W[-1] is the last row, as in NumPy
    "zero_d": np.array(5),
    "one_d": np.array([3, 0, 3, 6]),       # the sampling loop's argmax per image
    "list": [1, 2, 2],
    "two_d_negative": np.array([[0, -7, 6], [-1, 2, 2]]),
    "three_d": np.random.default_rng(3).integers(-V, V, (2, 3, 4)),
    "uint8": np.array([[1, 6]], np.uint8),
    "empty": np.zeros((2, 0), int),
}


@pytest.mark.parametrize("case", INDICES)
def test_word_embedding_takes_every_index_shape_W_x_takes(case):
    x = INDICES[case]
    W, = _arrays(0, (V, D))
    out, cache = cs231n.word_embedding_forward(x, W)
    want, cache_o = o_word_embedding_forward(x, W)           # W[x, :]
    assert out.shape == np.shape(x) + (D,) and out.dtype == W.dtype
    np.testing.assert_array_equal(out, want)
    assert not np.shares_memory(out, W)        # W[4, :] would be a view: a copy here
    dout, = _arrays(1, out.shape)
    _close([cs231n.word_embedding_backward(dout, cache)],
           [o_word_embedding_backward(dout, cache_o)], 1e-13, case)


@pytest.mark.parametrize("case", ["python_int", "negative_int", "one_d", "two_d_negative",
                                  "three_d"])
def test_word_embedding_gradient_matches_finite_differences(case):
    x = INDICES[case]
    W, = _arrays(4, (V, D))
    dout, = _arrays(5, np.shape(x) + (D,))
    dW = cs231n.word_embedding_backward(dout, cs231n.word_embedding_forward(x, W)[1])
    numeric = numeric_gradient(lambda: cs231n.word_embedding_forward(x, W)[0], W, dout)
    check_fd(dW, numeric, f"word_embedding dW, x {case}")


def test_word_embedding_backward_sparse_branch_any_shape_and_broadcast_dout():
    rng = np.random.default_rng(6)
    x = rng.integers(-300, 300, (20, 12, 3))         # V * n above the dense threshold
    W, dout = _arrays(7, (300, 4), (20, 12, 3, 4))
    _close([cs231n.word_embedding_backward(dout, cs231n.word_embedding_forward(x, W)[1])],
           [o_word_embedding_backward(dout, (x, W))], 1e-12, "sparse")
    # np.add.at broadcasts dout against W[x]: one (D,) row for every index
    row, = _arrays(8, (4,))
    _close([cs231n.word_embedding_backward(row, cs231n.word_embedding_forward(x, W)[1])],
           [o_word_embedding_backward(row, (x, W))], 1e-12, "broadcast dout")


def test_word_embedding_backward_keeps_W_dtype_as_add_at_into_zeros_like():
    W32, = _arrays(9, (V, D), dtype=np.float32)
    dout64, = _arrays(10, (2, 3, D))
    x = INDICES["two_d_negative"]
    got = cs231n.word_embedding_backward(dout64, cs231n.word_embedding_forward(x, W32)[1])
    want = o_word_embedding_backward(dout64, (x, W32))
    _close([got], [want], 1e-6, "float64 dout into a float32 W")


def test_word_embedding_refuses_what_W_x_refuses():
    W, = _arrays(0, (V, D))
    raises_naming(TypeError, [r"x must hold integer indices", "float64",
                              "NumPy refuses non-integer indices too"],
                  lambda: cs231n.word_embedding_forward([1.0, 2.0], W))
    raises_naming(TypeError, [r"x must hold integer indices", "float64"],
                  lambda: cs231n.word_embedding_forward(2.0, W))
    raises_naming(ValueError, [r"x must lie in \[-V, V\) = \[-7, 7\)", "from W"],
                  lambda: cs231n.word_embedding_forward(7, W))
    raises_naming(ValueError, [r"dout must broadcast to x.shape \+ \(D,\)"],
                  lambda: cs231n.word_embedding_backward(
                      np.ones((2, D)), cs231n.word_embedding_forward([1, 2, 3], W)[1]))


# ------------------------------------------------------------------ broadcasting steps

N, DX, H = 3, 4, 5
# x, prev_h, prev_c (lstm), b shapes ("g" in b stands for G*H), and the cells whose
# course step accepts them as given (its LSTM slices a[:, :H] and reads H from
# prev_h.shape[1], so it needs 2-D gates and a 2-D prev_h).
BOTH, RNN_ONLY, NEITHER = ("rnn", "lstm"), ("rnn",), ()
STEP_CASES = {
    "x_1d": ((DX,), (N, H), (N, H), ("g",), BOTH),        # CaptioningRNN.sample's start
    "prev_h_1d": ((N, DX), (H,), (N, H), ("g",), RNN_ONLY),
    "single_row_1d": ((DX,), (H,), (H,), ("g",), RNN_ONLY),  # one unbatched step
    "prev_h_one_row": ((N, DX), (1, H), (N, H), ("g",), BOTH),
    "b_row": ((N, DX), (N, H), (N, H), (1, "g"), BOTH),
    "prev_c_1d": ((N, DX), (N, H), (H,), ("g",), BOTH),
    "prev_c_rows_stretch_gates": ((1, DX), (1, H), (N, H), ("g",), BOTH),
    "three_d_batch": ((2, N, DX), (N, H), (2, N, H), ("g",), RNN_ONLY),
}


def _step_inputs(cell, case, seed=0):
    xs, hs, cs, bs, _ = STEP_CASES[case]
    G = GATES[cell]
    bs = tuple(G * H if s == "g" else s for s in bs)
    return _arrays(seed, xs, hs, cs, (DX, G * H), (H, G * H), bs)


def _materialise(cell, x, h, c, b):
    """The inputs broadcast to their common batch and flattened to 2-D rows: what the
    course's step (2-D only for its LSTM) computes row by row; and the batch shape."""
    G = GATES[cell]
    batch = np.broadcast_shapes(x.shape[:-1], h.shape[:-1], b.shape[:-1],
                                c.shape[:-1] if _has_c(cell) else ())
    rows = [np.broadcast_to(a, batch + (n,)).reshape(-1, n)
            for a, n in ((x, DX), (h, H), (c if _has_c(cell) else h, H))]
    return rows, np.broadcast_to(b, batch + (G * H,)).reshape(-1, G * H), batch


@pytest.mark.parametrize("case", STEP_CASES)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_step_forward_broadcasts_as_numpy(cell, case):
    x, h, c, Wx, Wh, b = _step_inputs(cell, case)
    got = _step_call(cell, "compat", x, h, c, Wx, Wh, b)[:-1]
    if cell in STEP_CASES[case][4]:             # the course's own step takes them as given
        _close(got, _step_call(cell, "course", x, h, c, Wx, Wh, b)[:-1], 1e-13, case)
    (xr, hr, cr), br, batch = _materialise(cell, x, h, c, b)
    rows = _step_call(cell, "course", xr, hr, cr, Wx, Wh, br)[:-1]
    _close(got, [r.reshape(batch + (H,)) for r in rows], 1e-13, case + " (rows)")


@pytest.mark.parametrize("case", STEP_CASES)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_step_backward_of_broadcast_inputs(cell, case):
    """dWx, dWh, db as the course computes them on the broadcast rows; every gradient,
    those of the broadcast inputs in their own shapes, by central differences."""
    x, h, c, Wx, Wh, b = _step_inputs(cell, case, seed=1)
    out = _step_call(cell, "compat", x, h, c, Wx, Wh, b)
    dn, dc = _arrays(2, out[0].shape, out[0].shape)
    backward = _step(cell, "compat")[1]
    grads = backward(dn, out[-1]) if not _has_c(cell) else backward(dn, dc, out[-1])

    (xr, hr, cr), br, _ = _materialise(cell, x, h, c, b)
    course = _step_call(cell, "course", xr, hr, cr, Wx, Wh, br)
    o_backward = _step(cell, "course")[1]
    rows = (dn.reshape(-1, H), dc.reshape(-1, H))
    want = (o_backward(rows[0], course[-1]) if not _has_c(cell)
            else o_backward(*rows, course[-1]))
    _close(grads[-3:], want[-3:], 1e-12, f"{case} dWx, dWh, db")
    assert grads[-1].shape == (GATES[cell] * H,)   # db as the course's da.sum(axis=0)

    names = ("x", "prev_h") + (("prev_c",) if _has_c(cell) else ()) + ("Wx", "Wh")
    arrays = (x, h) + ((c,) if _has_c(cell) else ()) + (Wx, Wh)
    if not _has_c(cell):
        run, d_out = (lambda: _step_call(cell, "compat", x, h, c, Wx, Wh, b)[0]), dn
    else:   # L = sum(next_h dn + next_c dc)
        run = lambda: np.stack(_step_call(cell, "compat", x, h, c, Wx, Wh, b)[:2])  # noqa
        d_out = np.stack((dn, dc))
    for name, arr, g in zip(names, arrays, grads):
        assert g.shape == arr.shape, f"{case} d{name}: shape {g.shape}, input {arr.shape}"
        check_fd(g, numeric_gradient(run, arr, d_out), f"{cell} {case} d{name}")


def test_lstm_step_takes_a_scalar_prev_c_and_dnext_c():
    x, h, Wx, Wh, b = _arrays(3, (N, DX), (N, H), (DX, 4 * H), (H, 4 * H), (4 * H,))
    nh, nc, cache = cs231n.lstm_step_forward(x, h, 0, Wx, Wh, b)     # c = 0, NumPy-style
    want = o_lstm_step_forward(x, h, np.zeros((N, H)), Wx, Wh, b)
    _close([nh, nc], want[:2], 1e-13, "prev_c = 0")
    grads = cs231n.lstm_step_backward(np.ones((N, H)), 0, cache)
    assert grads[2].shape == ()                                      # dprev_c of a scalar
    want = o_lstm_step_backward(np.ones((N, H)), np.zeros((N, H)), want[2])
    _close(grads[:2] + grads[3:], want[:2] + want[3:], 1e-12, "dnext_c = 0")
    np.testing.assert_allclose(grads[2], want[2].sum(), rtol=1e-12)


def test_step_broadcasting_refuses_what_numpy_refuses():
    x, h, Wx, Wh, b = _arrays(4, (N, DX), (N, H), (DX, H), (H, H), (H,))
    raises_naming(ValueError, [r"x \(2, 4\), prev_h \(3, 5\) and b \(5,\) must broadcast"],
                  lambda: cs231n.rnn_step_forward(np.ones((2, DX)), h, Wx, Wh, b))
    raises_naming(ValueError, [r"x must have shape \(\.\.\., D\)", "scalar"],
                  lambda: cs231n.rnn_step_forward(1.0, h, Wx, Wh, b))
    raises_naming(ValueError, [r"Wx must have shape \(D, H\) = \(3, 5\)"],
                  lambda: cs231n.rnn_step_forward(np.ones(3), h, Wx, Wh, b))
    _, cache = cs231n.rnn_step_forward(x, h, Wx, Wh, b)
    raises_naming(ValueError, [r"dnext_h must broadcast to next_h's shape = \(3, 5\)"],
                  lambda: cs231n.rnn_step_backward(np.ones((2, 3, H)), cache))


# ------------------------------------------------------------------ dtypes

@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sequence_functions_promote_a_float32_model_fed_float64_states(cell):
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, seed=11)
    x32, Wx32, Wh32, b32 = (a.astype(np.float32) for a in (x, Wx, Wh, b))
    forward, backward = _seq(cell)
    h, cache = forward(x32, h0, Wx32, Wh32, b32)          # h0 float64: the features' path
    want_h, caches = _course_steps(cell, x32, h0, Wx32, Wh32, b32)
    # float64 results as the course's; the course still rounds x32.dot(Wx32) to float32
    # before it meets h0, compat converts everything to float64 first
    _close([h], [want_h], 1e-6, "h")
    _close(backward(dh, cache), _course_backward(cell, dh, caches), 1e-6, "grads")
    wide = [a.astype(np.float64) for a in (x32, h0, Wx32, Wh32, b32)]
    h64, cache64 = forward(*wide)
    _close([h], [h64], 1e-15, "h, all float64")
    _close(backward(dh, cache), backward(dh, cache64), 1e-15, "grads, all float64")


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_integer_arguments_promote_as_numpy(cell):
    rng = np.random.default_rng(12)
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, seed=12)
    x_int = rng.integers(-2, 3, x.shape)                   # int64: float64 with anything
    h0_int = np.zeros(h0.shape, int)
    Wx32 = Wx.astype(np.float32)
    forward, backward = _seq(cell)
    h, cache = forward(x_int, h0_int, Wx32, Wh, b)
    want_h, caches = _course_steps(cell, x_int, h0_int, Wx32, Wh, b)
    _close([h], [want_h], 1e-12, "h")
    _close(backward(dh, cache), _course_backward(cell, dh, caches), 1e-11, "grads")
    # integers only: the ints' products, then tanh make float64 (the course's LSTM would
    # truncate its sigmoid to ints: np.zeros_like(x) of an int x; compat does not)
    ints = [rng.integers(-1, 2, a.shape) for a in (x, Wx, Wh, b)]
    h, _ = forward(ints[0], h0_int, *ints[1:])
    assert h.dtype == np.float64
    if not _has_c(cell):
        _close([h], [_course_steps(cell, ints[0], h0_int, *ints[1:])[0]], 1e-12, "all ints")
    # int16 alone: np.tanh gives float32
    step = _step_call(cell, "compat", *(a.astype(np.int16) for a in (
        ints[0][:, 0], np.zeros((3, 6), int), np.zeros((3, 6), int), *ints[1:])))
    assert step[0].dtype == np.float32


def test_python_scalars_stay_weak_as_in_numpy():
    x, h, Wx, Wh = _arrays(13, (N, DX), (N, H), (DX, H), (H, H), dtype=np.float32)
    got = cs231n.rnn_step_forward(x, h, Wx, Wh, 0)[0]             # b = 0: float32 kept
    want = o_rnn_step_forward(x, h, Wx, Wh, 0)[0]
    _close([got], [want], 1e-6, "b = 0")
    assert got.dtype == np.float32


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_a_float64_dh_into_a_float32_forward_gives_float64_gradients(cell):
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, seed=14)
    args32 = [a.astype(np.float32) for a in (x, h0, Wx, Wh, b)]
    forward, backward = _seq(cell)
    got = backward(dh, forward(*args32)[1])
    # the course: float32 states, float64 arithmetic from dh on; compat reruns the forward
    # in float64 (from the float32 arguments), so it is held to float32's rounding
    _close(got, _course_backward(cell, dh, _course_steps(cell, *args32)[1]), 2e-6, "course")
    exact = backward(dh, forward(*(a.astype(np.float64) for a in args32))[1])
    _close(got, exact, 1e-13, "compat in float64")
    # and a float32 dh into a float64 forward promotes dh
    args64 = [a.astype(np.float64) for a in args32]
    _close(backward(dh.astype(np.float32), forward(*args64)[1]),
           backward(dh.astype(np.float32).astype(np.float64), forward(*args64)[1]), 1e-15,
           "float32 dh")


def test_step_backward_promotes_the_upstream_gradient():
    x, h, Wx, Wh, b = _arrays(15, (N, DX), (N, H), (DX, H), (H, H), (H,), dtype=np.float32)
    dn, = _arrays(16, (N, H))
    got = cs231n.rnn_step_backward(dn, cs231n.rnn_step_forward(x, h, Wx, Wh, b)[1])
    want = o_rnn_step_backward(dn, o_rnn_step_forward(x, h, Wx, Wh, b)[1])
    _close(got, want, 1e-6, "float64 dnext_h, float32 cache")
    assert all(g.dtype == np.float64 for g in got)


def test_other_layers_promote_as_numpy():
    x32, = _arrays(17, (2, 3, 4), dtype=np.float32)
    w, b = _arrays(18, (4, 5), (5,))
    out, _ = cs231n.temporal_affine_forward(x32, w, b)
    _close([out], [o_temporal_affine_forward(x32, w, b)[0]], 1e-12, "affine")
    scores, = _arrays(19, (2, 3, 5), dtype=np.float32)
    y = np.array([[0, 4, -1], [2, 2, 3]])
    for mask in (np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 0.25]]),       # float64 weights
                 np.array([[1, 0, 1], [1, 1, 0]]),                    # int64
                 np.array([[True, False, True], [True, True, False]])):
        got = cs231n.temporal_softmax_loss(scores, y, mask)
        want = o_temporal_softmax_loss(scores, y % 5, mask)
        _close(got, want, 1e-6, f"softmax loss, mask {mask.dtype}")


def test_results_compat_does_not_compute_are_refused():
    x, h, Wx, Wh, b = _arrays(20, (N, DX), (N, H), (DX, H), (H, H), (H,), dtype=np.float16)
    raises_naming(TypeError, [r"rnn_step_forward: the arguments", "promote to float16",
                              "float32 or float64 only"],
                  lambda: cs231n.rnn_step_forward(x, h, Wx, Wh, b))
    # float16 next to float32 promotes to float32, which is computed
    assert cs231n.rnn_step_forward(x, h.astype(np.float32), Wx, Wh, b)[0].dtype == np.float32
    raises_naming(TypeError, [r"prev_h must hold real numbers", "complex"],
                  lambda: cs231n.rnn_step_forward(x, h.astype(complex), Wx, Wh, b))
    raises_naming(TypeError, [r"promote to int64", "temporal_affine_forward"],
                  lambda: cs231n.temporal_affine_forward(np.ones((1, 2, 3), int),
                                                         np.ones((3, 2), int), np.zeros(2, int)))


# ------------------------------------------------------------------ list-style caches

@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_sequence_cache_is_the_list_of_step_caches(cell):
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, seed=21)
    forward, backward = _seq(cell)
    h, cache = forward(x, h0, Wx, Wh, b)
    _, caches_o = _course_steps(cell, x, h0, Wx, Wh, b)
    T = x.shape[1]
    assert len(cache) == T and len(list(cache)) == T and len(cache[1:3]) == 2
    step_backward, o_step_backward = _step(cell, "compat")[1], _step(cell, "course")[1]
    dc, = _arrays(22, h0.shape)
    h[...] = 0             # the caller owns h: writing it leaves the cache's steps alone
    for t in (0, 2, T - 1, -1):      # the idiom: rnn_step_backward(d, rnn_forward(...)[1][t])
        args = (dh[:, t],) if not _has_c(cell) else (dh[:, t], dc)
        _close(step_backward(*args, cache[t]), o_step_backward(*args, caches_o[t]), 1e-10,
               f"step {t}")
    # a backward loop of one's own over the cache, with the step functions
    own = _own_backward(cell, dh, reversed(list(enumerate(cache))))
    _close(own, backward(dh, cache), 1e-11, "own loop vs the compiled backward")
    _close(own, _course_backward(cell, dh, caches_o), 1e-11, "own loop vs the course")


def _own_backward(cell, dh, steps):
    """dx, dh0, dWx, dWh, db by the step backward functions over (t, step cache)."""
    step_backward = _step(cell, "compat")[1]
    dx = np.zeros(dh.shape[:2] + (DX_SEQ,))
    dprev_h = dprev_c = np.zeros((dh.shape[0], dh.shape[2]))
    sums = None
    for t, step in steps:
        if not _has_c(cell):
            dx[:, t], dprev_h, *d = step_backward(dh[:, t] + dprev_h, step)
        else:
            dx[:, t], dprev_h, dprev_c, *d = step_backward(dh[:, t] + dprev_h, dprev_c, step)
        sums = d if sums is None else [s + e for s, e in zip(sums, d)]
    return [dx, dprev_h, *sums]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sequence_backward_takes_a_list_of_step_caches(cell):
    """A forward loop of one's own with the compat step functions, then rnn_backward /
    lstm_backward on the list, as the originals' backward takes their forward's list."""
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, seed=23)
    forward, backward = _seq(cell)

    def own_forward():
        h, c, hs, caches = h0, np.zeros_like(h0), [], []
        for t in range(x.shape[1]):
            out = _step_call(cell, "compat", x[:, t], h, c, Wx, Wh, b)
            h, c = out[0], out[1] if _has_c(cell) else c
            hs.append(h)
            caches.append(out[-1])
        return np.stack(hs, axis=1), caches

    h, caches = own_forward()
    grads = backward(dh, caches)
    _close(grads, backward(dh, forward(x, h0, Wx, Wh, b)[1]), 1e-11, "list vs compiled")
    _close(grads, _course_backward(cell, dh, _course_steps(cell, x, h0, Wx, Wh, b)[1]), 1e-11,
           "list vs course")
    _close(backward(dh, forward(x, h0, Wx, Wh, b)[1][:]), grads, 1e-11, "cache[:]")
    for name, arr, g in zip(("x", "h0", "Wx", "Wh", "b"), (x, h0, Wx, Wh, b), grads):
        check_fd(g, numeric_gradient(lambda: own_forward()[0], arr, dh), f"{cell} list d{name}")


def test_list_caches_are_checked():
    x, h0, Wx, Wh, b, dh = _seq_problem("rnn", seed=24)
    _, cache = cs231n.rnn_forward(x, h0, Wx, Wh, b)
    raises_naming(ValueError, [r"dh must have shape \(N, T, H\) with T = 2"],
                  lambda: cs231n.rnn_backward(dh, cache[:2]))
    raises_naming(TypeError, [r"cache must come from .*lstm_forward, or be a list of "
                              r"lstm_step_forward caches", "rnn_forward"],
                  lambda: cs231n.lstm_backward(dh, cache))
    raises_naming(TypeError, [r"or be a list of lstm_step_forward caches", "list"],
                  lambda: cs231n.lstm_backward(dh, list(cache)))
    raises_naming(TypeError, [r"or be a list of rnn_step_forward caches", "list"],
                  lambda: cs231n.rnn_backward(dh, []))
    raises_naming(TypeError, [r"cache must come from .*rnn_step_forward", "rnn_forward"],
                  lambda: cs231n.rnn_step_backward(dh[:, 0], cache))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_h0_broadcast_rows_and_upstream_broadcast(cell):
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, seed=25)
    forward, backward = _seq(cell)
    row = h0[:1].copy()                                  # (1, H): every sequence starts there
    h, cache = forward(x, row, Wx, Wh, b)
    _close([h], [_course_steps(cell, x, row, Wx, Wh, b)[0]], 1e-12, "h0 (1, H)")
    grads = backward(dh, cache)
    assert grads[1].shape == (1, h0.shape[1])
    check_fd(grads[1], numeric_gradient(lambda: forward(x, row, Wx, Wh, b)[0], row, dh),
             f"{cell} dh0 of a (1, H) h0")
    ones = backward(1.0, cache)                          # dh = 1 everywhere, broadcast
    _close(ones, backward(np.ones(h.shape), cache), 1e-15, "dh = 1.0")


# ------------------------------------------------------------------ CaptioningRNN.sample

COURSE = types.SimpleNamespace(word_embedding_forward=o_word_embedding_forward,
                               rnn_step_forward=o_rnn_step_forward,
                               lstm_step_forward=o_lstm_step_forward)


def _sample(layers, cell, params, features, start, max_length, start_as):
    """CaptioningRNN.sample as the solutions write it (affine_forward inlined)."""
    N = features.shape[0]
    captions = np.zeros((N, max_length), dtype=np.int32)
    h = features.dot(params["W_proj"]) + params["b_proj"]
    c = np.zeros_like(h)
    token = start if start_as == "scalar" else start * np.ones(N, dtype=np.int32)
    word, _ = layers.word_embedding_forward(token, params["W_embed"])
    for t in range(max_length):
        if not _has_c(cell):
            h, _ = layers.rnn_step_forward(word, h, params["Wx"], params["Wh"], params["b"])
        else:
            h, c, _ = layers.lstm_step_forward(word, h, c, params["Wx"], params["Wh"],
                                               params["b"])
        scores = h.dot(params["W_vocab"]) + params["b_vocab"]
        idx = np.argmax(scores, axis=1)
        captions[:, t] = idx
        word, _ = layers.word_embedding_forward(idx, params["W_embed"])
    return captions


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("start_as", ["scalar", "one_d"])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_captioning_sample_loop_gives_the_course_indices(cell, start_as, dtype):
    Vw, Wd, Hd, Din, Nimg = 30, 8, 12, 10, 16
    G = GATES[cell]
    shapes = {"W_embed": (Vw, Wd), "W_proj": (Din, Hd), "b_proj": (Hd,), "Wx": (Wd, G * Hd),
              "Wh": (Hd, G * Hd), "b": (G * Hd,), "W_vocab": (Hd, Vw), "b_vocab": (Vw,)}
    params = dict(zip(shapes, _arrays(26, *shapes.values(), dtype=dtype, scale=1.0)))
    features, = _arrays(27, (Nimg, Din), dtype=dtype)
    got = _sample(cs231n, cell, params, features, 1, 12, start_as)
    want = _sample(COURSE, cell, params, features, 1, 12, start_as)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 3                      # the captions are not degenerate


# ------------------------------------------------------------------ min-char-rnn globals

# The swap, in the script's own namespace (script_namespace: the script verbatim).
SWAP = '''
script_lossFun, script_sample = lossFun, sample
lossFun = minchar.bind(globals())
sample = minchar.bind_sample(globals())
'''


def _script_namespace(vocab_size=13, hidden_size=9, seed=0):
    """The script's globals and functions (_minchar_script.py), then its one-line swap."""
    rng = np.random.RandomState(seed)
    ns = script_namespace(rng.randn(hidden_size, vocab_size) * 0.3,
                          rng.randn(hidden_size, hidden_size) * 0.3,
                          rng.randn(vocab_size, hidden_size) * 0.3,
                          np.zeros((hidden_size, 1)), np.zeros((vocab_size, 1)),
                          minchar=minchar)
    exec(SWAP, ns)
    return ns


def test_the_bound_lossFun_reads_the_scripts_globals_through_training():
    ns = _script_namespace()
    rng = np.random.default_rng(28)
    data = rng.integers(0, 13, 400).tolist()
    hprev = np.zeros((9, 1))
    mem = {k: np.zeros_like(ns[k]) for k in ("Wxh", "Whh", "Why", "bh", "by")}
    for n, p in enumerate(range(0, 300, 10)):
        inputs, targets = data[p:p + 10], data[p + 1:p + 11]
        got = ns["lossFun"](inputs, targets, hprev)
        want = ns["script_lossFun"](inputs, targets, hprev)
        _close(got, want, 1e-12, f"iteration {n}")
        hprev = got[-1]
        for k, d in zip(("Wxh", "Whh", "Why", "bh", "by"), got[1:6]):
            mem[k] += d * d
            if n % 2:             # Adagrad in place, as the script ...
                ns[k] += -0.1 * d / np.sqrt(mem[k] + 1e-8)
            else:                 # ... and rebinding the globals, which lossFun follows
                ns[k] = ns[k] - 0.1 * d / np.sqrt(mem[k] + 1e-8)
    assert ns["lossFun"].__name__ == "lossFun" and "bound namespace" in ns["lossFun"].__doc__


def test_the_bound_sample_draws_what_the_scripts_sample_draws():
    ns = _script_namespace(seed=1)
    h = np.tanh(np.random.default_rng(29).standard_normal((9, 1)))
    np.random.seed(30)
    want = ns["script_sample"](h, 4, 50)
    np.random.seed(30)
    assert ns["sample"](h, 4, 50) == want and len(set(want)) > 3


def test_bind_errors_name_what_is_missing_or_inconsistent():
    ns = _script_namespace()
    del ns["Whh"], ns["by"]
    raises_naming(NameError, [r"reads the script's globals", "not defined in its namespace: "
                              "Whh, by"], lambda: ns["lossFun"]([1], [2], np.zeros((9, 1))))
    ns = _script_namespace()
    ns["vocab_size"] = 12
    raises_naming(ValueError, [r"vocab_size = 12 but Wxh has shape \(9, 13\)"],
                  lambda: ns["lossFun"]([1], [2], np.zeros((9, 1))))
    raises_naming(TypeError, [r"namespace must be a mapping"], lambda: minchar.bind(["Wxh"]))
    raises_naming(TypeError, [r"namespace must be a mapping"],
                  lambda: minchar.bind_sample(None))
