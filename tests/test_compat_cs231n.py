"""fastbptt.compat.cs231n against the layer functions written the way the CS231n
assignments write them (the oracle in _cs231n_course.py: NumPy, step functions looped over
time, np.add.at), central-difference gradient checks in float64, float32 kept, bad input.
The originals' less tidy idioms (broadcasting, promotion, list caches): test_compat_dropin.py."""
import numpy as np
import pytest

import _cs231n_course as course
import fastbptt
from _cs231n_course import check_fd as _check_fd
from _cs231n_course import numeric_gradient
from _helpers import DTYPES, raises_naming, relative_error
from fastbptt.cells.spec import get_spec
from fastbptt.compat import cs231n

TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-11}


# ------------------------------------------------------------------ problems and checks

def _rng(seed):
    return np.random.default_rng(seed)


def _arrays(dtype, seed, *shapes, scale=0.5):
    rng = _rng(seed)
    return [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]


def _assert_all_close(got, want, dtype, what):
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}[{k}] shape {a.shape} != {b.shape}"
        assert a.dtype == np.dtype(dtype), f"{what}[{k}] dtype {a.dtype}, want {dtype}"
        err = relative_error(a.astype(np.float64), b.astype(np.float64))
        assert err < TOL[np.dtype(dtype)], f"{what}[{k}]: relative error {err:.2e}"


SHAPES = [(3, 5, 4, 6), (1, 7, 3, 5), (4, 1, 2, 3), (2, 3, 5, 2)]   # N, T, D, H


def _seq_problem(cell, dtype, N, T, D, H, seed=0):
    G = get_spec(cell).gates
    x, h0, Wx, Wh, b, dh = _arrays(dtype, seed, (N, T, D), (N, H), (D, G * H), (H, G * H),
                                   (G * H,), (N, T, H))
    return x, h0, Wx, Wh, b, dh


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sequence_functions_match_the_course_loop(cell, shape, dtype):
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, dtype, *shape)
    inputs = [a.copy() for a in (x, h0, Wx, Wh, b, dh)]
    forward, backward = getattr(cs231n, f"{cell}_forward"), getattr(cs231n, f"{cell}_backward")
    o_forward = getattr(course, f"o_{cell}_forward")
    o_backward = getattr(course, f"o_{cell}_backward")
    h, cache = forward(x, h0, Wx, Wh, b)
    h_o, cache_o = o_forward(x, h0, Wx, Wh, b)
    _assert_all_close([h], [h_o], dtype, f"{cell}_forward")
    _assert_all_close(backward(dh, cache), o_backward(dh, cache_o), dtype, f"{cell}_backward")
    for before, after in zip(inputs, (x, h0, Wx, Wh, b, dh)):
        np.testing.assert_array_equal(before, after)      # the caller's arrays untouched


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_functions_match_the_course(dtype):
    N, D, H = 3, 4, 5
    x, h, c, Wx1, Wh1, b1, Wx4, Wh4, b4, dh, dc = _arrays(
        dtype, 1, (N, D), (N, H), (N, H), (D, H), (H, H), (H,), (D, 4 * H), (H, 4 * H),
        (4 * H,), (N, H), (N, H))
    nh, cache = cs231n.rnn_step_forward(x, h, Wx1, Wh1, b1)
    nh_o, cache_o = course.o_rnn_step_forward(x, h, Wx1, Wh1, b1)
    _assert_all_close([nh], [nh_o], dtype, "rnn_step_forward")
    _assert_all_close(cs231n.rnn_step_backward(dh, cache), course.o_rnn_step_backward(dh, cache_o),
                      dtype, "rnn_step_backward")
    nh, nc, cache = cs231n.lstm_step_forward(x, h, c, Wx4, Wh4, b4)
    nh_o, nc_o, cache_o = course.o_lstm_step_forward(x, h, c, Wx4, Wh4, b4)
    _assert_all_close([nh, nc], [nh_o, nc_o], dtype, "lstm_step_forward")
    _assert_all_close(cs231n.lstm_step_backward(dh, dc, cache),
                      course.o_lstm_step_backward(dh, dc, cache_o), dtype, "lstm_step_backward")


def test_lstm_step_saturated_gates_stay_finite():
    x = np.full((2, 3), 800.0)
    out = cs231n.lstm_step_forward(x, np.zeros((2, 2)), np.zeros((2, 2)),
                                   np.ones((3, 8)), np.ones((2, 8)), -np.ones(8))[:2]
    x[0] = -800
    out += cs231n.lstm_step_forward(x, np.zeros((2, 2)), np.zeros((2, 2)),
                                    np.ones((3, 8)), np.ones((2, 8)), np.zeros(8))[:2]
    assert all(np.isfinite(a).all() for a in out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("NTVD", [(2, 3, 5, 4), (4, 6, 3, 2), (1, 1, 7, 3),
                                  (20, 12, 300, 3)])   # the last one takes the sparse branch
def test_embedding_affine_and_loss_match_the_course(NTVD, dtype):
    N, T, V, D = NTVD
    rng = _rng(2)
    words = rng.integers(0, V, (N, T))
    W, dout, w, b, dout2, scores = _arrays(dtype, 3, (V, D), (N, T, D), (D, V), (V,),
                                           (N, T, V), (N, T, V), scale=2.0)
    out, cache = cs231n.word_embedding_forward(words, W)
    out_o, cache_o = course.o_word_embedding_forward(words, W)
    _assert_all_close([out, cs231n.word_embedding_backward(dout, cache)],
                      [out_o, course.o_word_embedding_backward(dout, cache_o)], dtype, "embedding")
    out, cache = cs231n.temporal_affine_forward(out, w, b)
    out_o, cache_o = course.o_temporal_affine_forward(out_o, w, b)
    _assert_all_close([out], [out_o], dtype, "temporal_affine_forward")
    _assert_all_close(cs231n.temporal_affine_backward(dout2, cache),
                      course.o_temporal_affine_backward(dout2, cache_o), dtype,
                      "temporal_affine_backward")
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) > 0.3
    _assert_all_close(cs231n.temporal_softmax_loss(scores, y, mask),
                      course.o_temporal_softmax_loss(scores, y, mask), dtype,
                      "temporal_softmax_loss")


def test_softmax_loss_verbose_prints(capsys):
    cs231n.temporal_softmax_loss(np.zeros((2, 3, 4)), np.zeros((2, 3), int),
                                 np.ones((2, 3), bool), verbose=True)
    assert "(6, 4)" in capsys.readouterr().out


def test_softmax_loss_large_scores_stay_finite():
    x = np.array([[[1000.0, -1000.0, 0.0]]])
    loss, dx = cs231n.temporal_softmax_loss(x, np.array([[1]]), np.array([[True]]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0) and np.isfinite(dx).all()


# ------------------------------------------------------------------ finite differences

@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sequence_gradients_match_finite_differences(cell):
    x, h0, Wx, Wh, b, dh = _seq_problem(cell, np.float64, 2, 4, 3, 4, seed=5)
    forward, backward = getattr(cs231n, f"{cell}_forward"), getattr(cs231n, f"{cell}_backward")
    grads = backward(dh, forward(x, h0, Wx, Wh, b)[1])
    run = lambda: forward(x, h0, Wx, Wh, b)[0]      # noqa: E731 (arrays perturbed in place)
    for name, arr, g in zip(("x", "h0", "Wx", "Wh", "b"), (x, h0, Wx, Wh, b), grads):
        _check_fd(g, numeric_gradient(run, arr, dh), f"{cell} d{name}")


def test_step_gradients_match_finite_differences():
    N, D, H = 2, 3, 4
    x, h, c, Wx1, Wh1, b1, Wx4, Wh4, b4, dh, dc = _arrays(
        np.float64, 6, (N, D), (N, H), (N, H), (D, H), (H, H), (H,), (D, 4 * H), (H, 4 * H),
        (4 * H,), (N, H), (N, H))
    grads = cs231n.rnn_step_backward(dh, cs231n.rnn_step_forward(x, h, Wx1, Wh1, b1)[1])
    run = lambda: cs231n.rnn_step_forward(x, h, Wx1, Wh1, b1)[0]   # noqa: E731
    for name, arr, g in zip(("x", "prev_h", "Wx", "Wh", "b"), (x, h, Wx1, Wh1, b1), grads):
        _check_fd(g, numeric_gradient(run, arr, dh), f"rnn_step d{name}")

    grads = cs231n.lstm_step_backward(dh, dc, cs231n.lstm_step_forward(x, h, c, Wx4, Wh4, b4)[2])
    # L = sum(next_h * dh + next_c * dc): both outputs in one scalar
    run = lambda: np.concatenate(cs231n.lstm_step_forward(x, h, c, Wx4, Wh4, b4)[:2])  # noqa
    d_both = np.concatenate((dh, dc))
    names = ("x", "prev_h", "prev_c", "Wx", "Wh", "b")
    for name, arr, g in zip(names, (x, h, c, Wx4, Wh4, b4), grads):
        _check_fd(g, numeric_gradient(run, arr, d_both), f"lstm_step d{name}")


def test_other_layers_gradients_match_finite_differences():
    N, T, V, D = 2, 3, 5, 4
    rng = _rng(7)
    words = rng.integers(0, V, (N, T))
    words[0, :2] = 1                                    # a repeated word: rows summed
    W, dout, x, w, b, dout2, scores = _arrays(np.float64, 8, (V, D), (N, T, D), (N, T, D),
                                              (D, V), (V,), (N, T, V), (N, T, V))
    dW = cs231n.word_embedding_backward(dout, cs231n.word_embedding_forward(words, W)[1])
    _check_fd(dW, numeric_gradient(lambda: cs231n.word_embedding_forward(words, W)[0], W, dout),
              "word_embedding dW")
    grads = cs231n.temporal_affine_backward(dout2, cs231n.temporal_affine_forward(x, w, b)[1])
    run = lambda: cs231n.temporal_affine_forward(x, w, b)[0]   # noqa: E731
    for name, arr, g in zip(("x", "w", "b"), (x, w, b), grads):
        _check_fd(g, numeric_gradient(run, arr, dout2), f"temporal_affine d{name}")
    y = rng.integers(0, V, (N, T))
    mask = np.array([[True, True, False], [True, False, True]])
    _, dx = cs231n.temporal_softmax_loss(scores, y, mask)
    num = numeric_gradient(lambda: np.array(cs231n.temporal_softmax_loss(scores, y, mask)[0]),
                           scores, np.array(1.0))
    _check_fd(dx, num, "temporal_softmax_loss dx")


# ------------------------------------------------------------------ contracts

def test_batch_major_sequence_is_not_copied():
    x, h0, Wx, Wh, b, _ = _seq_problem("lstm", np.float32, 3, 5, 4, 6)
    _, cache = cs231n.lstm_forward(x, h0, Wx, Wh, b)
    inner = cache.inner
    assert np.shares_memory(inner.args.x, x)


def test_the_backend_switch_reaches_the_compat_functions():
    x, h0, Wx, Wh, b, dh = _seq_problem("rnn", np.float64, 2, 4, 3, 5)
    h, cache = cs231n.rnn_forward(x, h0, Wx, Wh, b)
    with fastbptt.use_backend("reference"):
        h_r, cache_r = cs231n.rnn_forward(x, h0, Wx, Wh, b)
    assert type(cache_r.inner).__module__.startswith("fastbptt.reference")
    _assert_all_close([h], [h_r], np.float64, "h")
    _assert_all_close(cs231n.rnn_backward(dh, cache), cs231n.rnn_backward(dh, cache_r),
                      np.float64, "grads")


def _rnn_args(**change):
    x, h0, Wx, Wh, b, _ = _seq_problem("rnn", np.float64, 2, 3, 4, 5)
    args = dict(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    args.update(change)
    return args


BAD_SEQUENCE = [
    ("x_2d", dict(x=np.ones((2, 4))), ValueError, [r"x must be 3-D"]),
    ("x_complex", dict(x=np.ones((2, 3, 4), complex)), TypeError,
     [r"x must hold real numbers", "complex128"]),
    ("x_bool", dict(x=np.ones((2, 3, 4), bool)), TypeError, [r"x must hold real numbers"]),
    ("x_float16", dict(x=np.ones((2, 3, 4), np.float16), h0=np.ones((2, 5), np.float16),
                       Wx=np.ones((4, 5), np.float16), Wh=np.ones((5, 5), np.float16),
                       b=np.ones(5, np.float16)), TypeError,
     [r"promote to float16", "float32 or float64 only"]),
    ("Wx_rows", dict(Wx=np.ones((3, 5))), ValueError,
     [r"Wx must have shape \(D, H\)", r"D from x"]),
    ("Wh_shape", dict(Wh=np.ones((5, 4))), ValueError, [r"Wh must have shape \(H, H\)"]),
    ("b_shape", dict(b=np.ones(4)), ValueError, [r"b must broadcast to \(H,\)"]),
    ("b_per_row", dict(b=np.ones((2, 5))), ValueError, [r"b must broadcast to \(H,\)"]),
    ("h0_shape", dict(h0=np.ones((3, 5))), ValueError, [r"h0 must broadcast to \(N, H\)"]),
]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("case,change,exc,needles", BAD_SEQUENCE, ids=[c[0] for c in BAD_SEQUENCE])
def test_bad_sequence_arguments_are_named(cell, case, change, exc, needles):
    args = _rnn_args(**change)
    G = get_spec(cell).gates
    if G > 1:   # G*H columns in Wx, Wh and b
        for k in ("Wx", "Wh", "b"):
            if k not in change:
                args[k] = np.tile(args[k], G)
        needles = [n.replace(r"H\)", rf"{G}\*H\)").replace(r"H,\)", rf"{G}\*H,\)")
                   if case in ("Wx_rows", "Wh_shape", "b_shape", "b_per_row") else n
                   for n in needles]
        if case == "Wh_shape":
            args["Wh"] = np.ones((5, 19))
    raises_naming(exc, needles, lambda: getattr(cs231n, f"{cell}_forward")(**args))


def test_bad_backward_arguments_are_named():
    args = _rnn_args()
    h, cache = cs231n.rnn_forward(**args)
    raises_naming(ValueError, [r"dh must broadcast to h's shape \(N, T, H\)"],
                  lambda: cs231n.rnn_backward(h[:, :2], cache))
    raises_naming(TypeError, [r"dh must hold real numbers"],
                  lambda: cs231n.rnn_backward(h.astype(complex), cache))
    raises_naming(TypeError, [r"cache must come from .*lstm_forward", "rnn_forward"],
                  lambda: cs231n.lstm_backward(h, cache))
    raises_naming(TypeError, [r"cache must come from .*rnn_forward"],
                  lambda: cs231n.rnn_backward(h, {"h": h}))
    step = cs231n.rnn_step_forward(args["x"][:, 0], args["h0"], args["Wx"], args["Wh"], args["b"])
    raises_naming(ValueError, [r"dnext_h must broadcast to next_h's shape"],
                  lambda: cs231n.rnn_step_backward(np.ones((2, 4)), step[1]))


def test_bad_other_layer_arguments_are_named():
    W = np.ones((5, 3))
    raises_naming(TypeError, [r"x must hold integer indices", "float64"],
                  lambda: cs231n.word_embedding_forward(np.ones((2, 2)), W))
    raises_naming(ValueError, [r"x must lie in \[-V, V\)", r"\[-5, 5\)"],
                  lambda: cs231n.word_embedding_forward(np.array([[0, 5]]), W))
    raises_naming(ValueError, [r"x must lie in \[-V, V\)"],
                  lambda: cs231n.word_embedding_forward(-6, W))
    raises_naming(TypeError, [r"x must hold integer indices", "bool"],
                  lambda: cs231n.word_embedding_forward(np.ones(5, bool), W))
    raises_naming(TypeError, [r"W must hold real numbers"],
                  lambda: cs231n.word_embedding_forward(1, np.ones((5, 3), complex)))
    raises_naming(TypeError, [r"promote to int64"],
                  lambda: cs231n.word_embedding_forward(1, np.ones((5, 3), int)))
    raises_naming(ValueError, [r"w must have shape \(D, M\)"],
                  lambda: cs231n.temporal_affine_forward(np.ones((2, 3, 4)), np.ones((3, 2)),
                                                         np.ones(2)))
    raises_naming(ValueError, [r"b must broadcast to \(N, T, M\)"],
                  lambda: cs231n.temporal_affine_forward(np.ones((2, 3, 4)), np.ones((4, 2)),
                                                         np.ones(3)))
    x = np.zeros((2, 3, 4))
    raises_naming(ValueError, [r"y must have shape \(N, T\)"],
                  lambda: cs231n.temporal_softmax_loss(x, np.zeros((3, 2), int), np.ones((2, 3))))
    raises_naming(ValueError, [r"y must lie in \[-V, V\)"],
                  lambda: cs231n.temporal_softmax_loss(x, np.full((2, 3), 4), np.ones((2, 3))))
    raises_naming(ValueError, [r"mask must have shape"],
                  lambda: cs231n.temporal_softmax_loss(x, np.zeros((2, 3), int), np.ones(6)))


def test_bad_step_arguments_are_named():
    x, h, b = np.ones((2, 3)), np.ones((2, 4)), np.ones(16)
    Wx, Wh = np.ones((3, 16)), np.ones((4, 16))
    raises_naming(ValueError, [r"prev_c must broadcast against the gates' shape"],
                  lambda: cs231n.lstm_step_forward(x, h, np.ones((2, 5)), Wx, Wh, b))
    raises_naming(ValueError, [r"x \(2, 3\), prev_h \(3, 4\) and b \(16,\) must broadcast"],
                  lambda: cs231n.lstm_step_forward(x, np.ones((3, 4)), h, Wx, Wh, b))
    raises_naming(ValueError, [r"prev_h must have shape \(..., H\) with H = 4"],
                  lambda: cs231n.lstm_step_forward(x, np.ones((2, 5)), h, Wx, Wh, b))
    raises_naming(ValueError, [r"Wx must have shape \(D, 4\*H\)"],
                  lambda: cs231n.lstm_step_forward(x, h, h, np.ones((2, 16)), Wh, b))
    _, rnn_cache = cs231n.rnn_step_forward(x, h, Wx[:, :4], Wh[:, :4], b[:4])
    raises_naming(TypeError, [r"cache must come from .*lstm_step_forward", "rnn_step_forward"],
                  lambda: cs231n.lstm_step_backward(h, h, rnn_cache))
    _, _, cache = cs231n.lstm_step_forward(x, h, h, Wx, Wh, b)
    raises_naming(ValueError, [r"dnext_c must broadcast to next_h's shape"],
                  lambda: cs231n.lstm_step_backward(h, np.ones((2, 5)), cache))
    raises_naming(TypeError, [r"cache must come from .*word_embedding_forward"],
                  lambda: cs231n.word_embedding_backward(np.ones((2, 3, 4)), cache))


def test_huge_broadcast_views_are_refused_before_any_copy():
    # found by tools/fuzz.py: a broadcast view of 2**31+5 steps asked NumPy for 256 GiB
    from fastbptt.compat import cs231n
    N, D, H = 2, 3, 4
    x = np.broadcast_to(np.zeros((1, 1, 1)), (N, 2**31 + 5, D))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="x has shape .* 32-bit BLAS index limit"):
        cs231n.rnn_forward(x, np.zeros((N, H)), rng.standard_normal((D, H)),
                           rng.standard_normal((H, H)), np.zeros(H))
