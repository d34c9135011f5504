"""checkpoint= on the compiled cells' forward functions (fastbptt.cells.checkpoint): the same
outputs and gradients as the plain path, with any segment length, lengths, batch_first,
dh_n/dc_n and no biases; bad values of checkpoint rejected before any work.

On these small problems the states, outputs and dh0/dc0 are held bit for bit (the same
per-step arithmetic, and the input projection's GEMM gives the same rows for a segment
as for all steps). dx and the shared weights' gradients come from GEMMs over one
segment's rows instead of all T*B (OpenBLAS blocks the rows differently, and the weight
gradients are summed per segment, then across segments), so they are held to 1e-12
(float64) / 1e-5 (float32), relative and absolute. On long sequences the projection's
row results can differ in the last bit too (test_long_sequences_agree_to_rounding).
"""
import numpy as np
import pytest

import fastbptt
from fastbptt._kernels.blas import gemm_library
from fastbptt.cells import spec as cellspec
from fastbptt.cells.checkpoint import segment_length
from fastbptt.cells.spec import SPECS

T, B, I, H = 11, 3, 4, 5
GATES = {name: spec.gates for name, spec in SPECS.items()}


def _finals(cell, cache):
    """The final states (h_n, and c_n where the cell has it), in spec.states order."""
    return tuple(getattr(cache, f"{name}_n") for name in SPECS[cell].states)
WEIGHT_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def problem(cell, dtype, batch_first=False, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    states = [rng.standard_normal((B, H)).astype(dtype) for _ in SPECS[cell].states]
    weights = [(0.4 * rng.standard_normal(shape)).astype(dtype)
               for shape in ((G * H, I), (G * H, H), (G * H,), (G * H,))]
    if not bias:
        weights[2:] = [None, None]
    dh = rng.standard_normal((B, T, H) if batch_first else (T, B, H)).astype(dtype)
    dn = [rng.standard_normal((B, H)).astype(dtype) for _ in states]
    return x, states, weights, dh, dn


def run(cell, x, states, weights, dh, dn, checkpoint, **kw):
    forward = getattr(fastbptt, f"{cell}_forward")
    backward = getattr(fastbptt, f"{cell}_backward")
    h, cache = forward(x, *states, *weights, checkpoint=checkpoint, **kw)
    finals = _finals(cell, cache)
    return h, finals, backward(dh, cache, *dn)


# On scipy's OpenBLAS a row of a GEMM's result does not depend on the other rows of the
# call at these sizes, so a segment's input projection gives the plain call's bits and so
# do the states; MKL's GEMM (the mkl extra) blocks by the call's shape, so there they agree
# to rounding (docs/guide/performance.md, "checkpoint=").
EXACT_ROWS = gemm_library() == "scipy"


def assert_equal_rows(a, b, dtype, err_msg=""):
    if EXACT_ROWS:
        np.testing.assert_array_equal(a, b, err_msg=err_msg)
    else:
        tol = WEIGHT_TOL[np.dtype(dtype)]
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=err_msg)


def assert_same(cell, plain, checkpointed, dtype):
    h0, finals0, grads0 = plain
    h1, finals1, grads1 = checkpointed
    assert_equal_rows(h1, h0, dtype)
    for a, b in zip(finals1, finals0):
        assert_equal_rows(a, b, dtype)
    assert type(grads1) is type(grads0)
    for name, a, b in zip(grads0._fields, grads1, grads0):
        if b is None:
            assert a is None, name
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if name.startswith(("dW", "db", "dx")):
            np.testing.assert_allclose(a, b, rtol=WEIGHT_TOL[np.dtype(dtype)],
                                       atol=WEIGHT_TOL[np.dtype(dtype)], err_msg=name)
        else:
            assert_equal_rows(a, b, dtype, err_msg=name)


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("checkpoint", [True, 1, 4, T, T + 3])
def test_same_as_plain(cell, dtype, checkpoint):
    x, states, weights, dh, dn = problem(cell, dtype)
    plain = run(cell, x, states, weights, dh, [None] * len(dn), None)
    assert_same(cell, plain, run(cell, x, states, weights, dh, [None] * len(dn), checkpoint),
                dtype)


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 3])
def test_segments_make_the_whole_calls_products(cell, dtype, rows):
    """Segments shorter than the steps from which a call of few rows packs W_hh still make
    the whole call's per-step products (the step form is chosen for the call's T), so the
    states stay the plain path's bit for bit."""
    steps = cellspec.packed_min_steps(rows)
    rng = np.random.default_rng(7)
    G = GATES[cell]
    x = rng.standard_normal((steps + 3, rows, I)).astype(dtype)
    states = [rng.standard_normal((rows, H)).astype(dtype) for _ in SPECS[cell].states]
    weights = [(0.4 * rng.standard_normal(shape)).astype(dtype)
               for shape in ((G * H, I), (G * H, H), (G * H,), (G * H,))]
    dh = rng.standard_normal((steps + 3, rows, H)).astype(dtype)
    none = [None] * len(states)
    plain = run(cell, x, states, weights, dh, none, None)
    assert_same(cell, plain, run(cell, x, states, weights, dh, none, 4), dtype)


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_batch_first_final_gradients(cell, batch_first):
    x, states, weights, dh, dn = problem(cell, np.float64, batch_first, seed=1)
    lengths = np.array([T, 0, 6])
    kw = dict(batch_first=batch_first, lengths=lengths)
    plain = run(cell, x, states, weights, dh, dn, None, **kw)
    assert_same(cell, plain, run(cell, x, states, weights, dh, dn, 4, **kw), np.float64)


@pytest.mark.parametrize("cell", list(GATES))
def test_many_to_one_and_no_bias(cell):
    x, states, weights, dh, dn = problem(cell, np.float64, bias=False, seed=2)
    plain = run(cell, x, states, weights, None, dn, None)
    assert_same(cell, plain, run(cell, x, states, weights, None, dn, 3), np.float64)


def test_rnn_nonlinearity_is_kept():
    x, states, weights, dh, dn = problem("rnn", np.float64, seed=3)
    plain = run("rnn", x, states, weights, dh, dn, None, nonlinearity="relu")
    assert_same("rnn", plain, run("rnn", x, states, weights, dh, dn, 2, nonlinearity="relu"),
                np.float64)


def test_caller_arrays_untouched():
    x, states, weights, dh, dn = problem("lstm", np.float32)
    copies = [a.copy() for a in (x, *states, *weights, dh, *dn)]
    run("lstm", x, states, weights, dh, dn, 3)
    for before, after in zip(copies, (x, *states, *weights, dh, *dn)):
        np.testing.assert_array_equal(before, after)


def test_segment_length():
    assert segment_length(None, 100) is None and segment_length(False, 100) is None
    assert segment_length(True, 100) == 10 and segment_length(True, 101) == 11
    assert segment_length(True, 1) == 1 and segment_length(7, 100) == 7
    assert segment_length(np.int64(3), 10) == 3


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (2.5, TypeError),
                                        ("yes", TypeError)])
def test_bad_checkpoint(bad, error):
    x, states, weights, _, _ = problem("gru", np.float64)
    with pytest.raises(error, match="checkpoint"):
        fastbptt.gru_forward(x, *states, *weights, checkpoint=bad)


def test_cache_of_another_cell_is_rejected():
    x, states, weights, dh, _ = problem("rnn", np.float64)
    _, cache = fastbptt.rnn_forward(x, *states, *weights, checkpoint=3)
    with pytest.raises(TypeError, match="cache"):
        fastbptt.gru_backward(dh, cache)


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("how", ["reference module", "backend switch"])
def test_reference_twin_takes_checkpoint_too(cell, how):
    # one signature for both backends: checkpoint= works under fastbptt.reference and
    # under use_backend("reference"), and equals the reference's plain path
    x, states, weights, dh, dn = problem(cell, np.float64, seed=3)
    forward = getattr(fastbptt.reference, f"{cell}_forward")
    backward = getattr(fastbptt.reference, f"{cell}_backward")
    h0, cache0 = forward(x, *states, *weights, lengths=np.array([T, 4, 0]))
    plain = (h0, _finals(cell, cache0), backward(dh, cache0, *dn))
    if how == "reference module":
        h1, cache1 = forward(x, *states, *weights, lengths=np.array([T, 4, 0]), checkpoint=3)
        grads1 = backward(dh, cache1, *dn)
    else:
        with fastbptt.use_backend("reference"):
            h1, cache1 = getattr(fastbptt, f"{cell}_forward")(
                x, *states, *weights, lengths=np.array([T, 4, 0]), checkpoint=3)
        grads1 = getattr(fastbptt, f"{cell}_backward")(dh, cache1, *dn)
    finals1 = _finals(cell, cache1)
    assert_same(cell, plain, (h1, finals1, grads1), np.float64)


@pytest.mark.parametrize("cell", list(GATES))
def test_check_finite_reaches_a_checkpointed_backward(cell):
    x, states, weights, dh, dn = problem(cell, np.float64)
    _, cache = getattr(fastbptt, f"{cell}_forward")(x, *states, *weights, checkpoint=True)
    dh[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        getattr(fastbptt, f"{cell}_backward")(dh, cache, *dn, check_finite=True)


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1000, 1, 8, 8), (600, 2, 33, 17)])
def test_long_sequences_agree_to_rounding(cell, dtype, shape):
    T_, B_, I_, H_ = shape
    G = GATES[cell]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    states = [None] * len(SPECS[cell].states)
    # contracting dynamics (weights 0.5 / sqrt(H)): a last-bit difference then stays a
    # last-bit difference over the steps instead of being amplified (near the edge of
    # chaos a float32 RNN amplifies it past 1e-5 in a few hundred steps)
    weights = [(0.5 * rng.standard_normal(s) / np.sqrt(H_)).astype(dtype)
               for s in ((G * H_, I_), (G * H_, H_), (G * H_,), (G * H_,))]
    dh = rng.standard_normal((T_, B_, H_)).astype(dtype)
    plain = run(cell, x, states, weights, dh, [None] * len(states), None)
    ckpt = run(cell, x, states, weights, dh, [None] * len(states), True)
    # the weight gradients are sums over T*B = 1000-1200 rows taken in another order,
    # with cancellation: float32 keeps ~1e-5 of their terms' size, not of the result's
    tol = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}[np.dtype(dtype)]
    for a, b in zip((ckpt[0], *ckpt[1], *ckpt[2]), (plain[0], *plain[1], *plain[2])):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
