"""The BLAS shim (fastbptt._kernels.blas) against NumPy.

gemm_py(trans_a, trans_b, alpha, A, B, beta, C): C := alpha op(A) op(B) + beta C in place.
gemv_py(trans_a, alpha, A, x, beta, y):          y := alpha op(A) x + beta y in place.
Row-major arrays; op(A) = A.T when the flag is set (A is then stored transposed).
"""
import itertools

import numpy as np
import pytest

from fastbptt._kernels.blas import gemm_py, gemv_py

# Relative error allowed against the exact (float64 or better) product, per dtype, measured
# against the error bound's scale |alpha| |op(A)| |op(B)| + |beta| |C| (so that entries that
# cancel to near zero are held to the size of what cancelled, as BLAS error bounds are).
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}

DTYPES = (np.float32, np.float64)

# (alpha, beta): plain product, accumulate, scaled both, alpha = 0, negative; all exactly
# representable in float32, since the entry points round them to the arrays' dtype.
ALPHA_BETA = [(1.0, 0.0), (1.0, 1.0), (-2.0, 0.5), (0.5, -1.5), (0.0, 2.0), (0.0, 0.0)]

# (m, n, k): 1x1, odd and prime sizes, vectors as matrices, k = 0, larger than a
# micro-kernel tile in every direction.
GEMM_SIZES = [(1, 1, 1), (3, 5, 7), (7, 1, 4), (1, 6, 3), (17, 13, 9), (5, 4, 0),
              (1, 1, 0), (65, 33, 70)]


def _check(got, alpha, prod, abs_prod, beta, before, dtype, err_msg):
    """got == alpha * prod + beta * before, BLAS semantics: beta = 0 ignores `before`."""
    got64 = got.astype(np.float64)
    expected = alpha * prod
    scale = abs(alpha) * abs_prod
    if beta != 0:
        expected = expected + beta * before
        scale = scale + abs(beta) * np.abs(before)
    assert np.all(np.isfinite(got64)), f"{err_msg}: non-finite entries {got}"
    err = np.abs(got64 - expected)
    bound = RTOL[np.dtype(dtype)] * scale + np.finfo(dtype).tiny
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"{err_msg}: at {worst} got {got64[worst]}, expected {expected[worst]} "
        f"(error {err[worst]:.3g}, bound {bound[worst]:.3g})")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m,n,k", GEMM_SIZES)
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
def test_gemm_matches_numpy(trans_a, trans_b, m, n, k, dtype):
    rng = np.random.default_rng(1000 + m * 100 + n * 10 + k)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    opA = (A.T if trans_a else A).astype(np.float64)
    opB = (B.T if trans_b else B).astype(np.float64)
    # The exact product of the (already rounded) inputs: float64 is exact enough for
    # float32 inputs and within k ulp for float64 ones.
    prod = opA @ opB
    abs_prod = np.abs(opA) @ np.abs(opB)
    A_before, B_before = A.copy(), B.copy()
    for alpha, beta in ALPHA_BETA:
        if beta == 0:
            # beta = 0 means C is output only: NaN in it must not leak (0 * NaN = NaN).
            C = np.full((m, n), np.nan, dtype)
        else:
            C = rng.standard_normal((m, n)).astype(dtype)
        C_before = C.astype(np.float64)
        out = gemm_py(trans_a, trans_b, alpha, A, B, beta, C)
        assert out is C, "gemm_py must return C itself (in place)"
        assert C.dtype == np.dtype(dtype)
        _check(C, alpha, prod, abs_prod, beta, C_before, dtype,
               f"alpha={alpha} beta={beta}")
        np.testing.assert_array_equal(A, A_before)
        np.testing.assert_array_equal(B, B_before)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m,n,k", [(0, 3, 2), (4, 0, 2), (0, 0, 0), (0, 0, 3)])
def test_gemm_empty_output_is_a_no_op(m, n, k, dtype):
    rng = np.random.default_rng(7)
    for trans_a, trans_b in itertools.product([False, True], repeat=2):
        A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        C = np.empty((m, n), dtype)
        out = gemm_py(trans_a, trans_b, 1.5, A, B, 0.0, C)
        assert out is C and out.shape == (m, n)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_gemm_leaves_memory_outside_c_alone(dtype):
    # C is a block of rows of a bigger buffer: the shim must write exactly m*n entries.
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 4)).astype(dtype)
    B = rng.standard_normal((4, 6)).astype(dtype)
    buf = np.full((7, 6), 42.0, dtype)
    C = buf[1:6]
    assert C.flags.c_contiguous
    gemm_py(False, False, 1.0, A, B, 0.0, C)
    np.testing.assert_array_equal(buf[0], 42.0)
    np.testing.assert_array_equal(buf[6], 42.0)
    _check(C, 1.0, A.astype(np.float64) @ B, np.abs(A.astype(np.float64)) @ np.abs(B),
           0.0, None, dtype, "block of a buffer")


def test_gemm_rejects_disagreeing_shapes():
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="shapes"):
        gemm_py(False, False, 1.0, A, np.ones((5, 2)), 0.0, np.empty((3, 2)))
    with pytest.raises(ValueError, match="shapes"):
        gemm_py(False, False, 1.0, A, np.ones((4, 2)), 0.0, np.empty((3, 3)))
    with pytest.raises(ValueError, match="shapes"):
        gemm_py(True, False, 1.0, A, np.ones((4, 2)), 0.0, np.empty((3, 2)))


def test_gemm_rejects_mixed_dtypes():
    A = np.ones((2, 2), np.float32)
    with pytest.raises((TypeError, ValueError)):
        gemm_py(False, False, 1.0, A, np.ones((2, 2), np.float64), 0.0,
                np.empty((2, 2), np.float32))


# (m, n) of A: 1x1, odd, row and column vectors, tall, wide, larger than a tile.
GEMV_SIZES = [(1, 1), (3, 5), (5, 3), (1, 7), (7, 1), (33, 17), (64, 65)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m,n", GEMV_SIZES)
@pytest.mark.parametrize("trans_a", [False, True])
def test_gemv_matches_numpy(trans_a, m, n, dtype):
    rng = np.random.default_rng(2000 + m * 100 + n)
    A = rng.standard_normal((m, n)).astype(dtype)
    opA = (A.T if trans_a else A).astype(np.float64)
    x = rng.standard_normal(opA.shape[1]).astype(dtype)
    prod = opA @ x.astype(np.float64)
    abs_prod = np.abs(opA) @ np.abs(x.astype(np.float64))
    A_before, x_before = A.copy(), x.copy()
    for alpha, beta in ALPHA_BETA:
        if beta == 0:
            y = np.full(opA.shape[0], np.nan, dtype)
        else:
            y = rng.standard_normal(opA.shape[0]).astype(dtype)
        y_before = y.astype(np.float64)
        out = gemv_py(trans_a, alpha, A, x, beta, y)
        assert out is y, "gemv_py must return y itself (in place)"
        assert y.dtype == np.dtype(dtype)
        _check(y, alpha, prod, abs_prod, beta, y_before, dtype, f"alpha={alpha} beta={beta}")
        np.testing.assert_array_equal(A, A_before)
        np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n", [(0, 4), (4, 0), (0, 0)])
def test_gemv_empty(trans_a, m, n, dtype):
    """A product over zero terms: y := beta * y (and beta = 0 clears NaN)."""
    A = np.empty((m, n), dtype)
    x = np.ones(m if trans_a else n, dtype)
    out_len = n if trans_a else m
    y = np.full(out_len, np.nan, dtype)
    assert gemv_py(trans_a, 2.0, A, x, 0.0, y) is y
    np.testing.assert_array_equal(y, np.zeros(out_len, dtype))
    y = np.arange(out_len, dtype=dtype)
    gemv_py(trans_a, 2.0, A, x, 0.5, y)
    np.testing.assert_array_equal(y, 0.5 * np.arange(out_len, dtype=dtype))


def test_gemm_k0_scales_c():
    """k = 0, m, n > 0: C := beta * C, and beta = 0 zeroes even NaN."""
    for dtype in DTYPES:
        A = np.empty((3, 0), dtype)
        B = np.empty((0, 4), dtype)
        C = np.full((3, 4), np.nan, dtype)
        gemm_py(False, False, 1.0, A, B, 0.0, C)
        np.testing.assert_array_equal(C, np.zeros((3, 4), dtype))
        C = np.arange(12, dtype=dtype).reshape(3, 4)
        gemm_py(False, False, 1.0, A, B, -0.5, C)
        np.testing.assert_array_equal(C, -0.5 * np.arange(12, dtype=dtype).reshape(3, 4))


def test_gemv_rejects_disagreeing_shapes():
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="shapes"):
        gemv_py(False, 1.0, A, np.ones(3), 0.0, np.empty(3))
    with pytest.raises(ValueError, match="shapes"):
        gemv_py(True, 1.0, A, np.ones(3), 0.0, np.empty(3))
