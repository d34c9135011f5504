"""The element-wise passes (activations.pxd over vmath.h) against NumPy, in ulps.

The kernels compute tanh and sigmoid with their own vectorisable polynomials rather than
libm, so their accuracy is a claim to hold: within 3 ulp of the correctly rounded value,
NaN propagated, infinities and huge arguments saturated.
"""
import numpy as np
import pytest
from scipy.special import expit

from fastbptt._kernels.activations import activate_grad_py, activate_py

TANH, RELU, SIGMOID, IDENTITY = 0, 1, 2, 3
MAX_ULP = 3.0


def run(kind, a, bias=None):
    bias = np.zeros_like(a) if bias is None else bias
    return activate_py(kind, a, bias, np.empty_like(a))


def ulp_error(got, exact, dtype):
    """|got - exact| in units of the spacing of exact rounded to dtype."""
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(np.longdouble)
    return (np.abs(got.astype(np.longdouble) - exact) / spacing).astype(np.float64)


def float32_sweep():
    # Every 97th float32 bit pattern with |x| < 30: ~40 million values across all binades.
    bits = np.arange(0, 2**32, 97, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    return x[np.isfinite(x) & (np.abs(x) < 30)]


def float64_sample():
    rng = np.random.default_rng(0)
    scales = (1e-300, 1e-8, 0.1, 0.25, 0.5, 1.0, 3.0, 10.0, 30.0)
    return np.concatenate([rng.standard_normal(200_000) * s for s in scales])


@pytest.mark.parametrize("kind, exact", [(TANH, np.tanh), (SIGMOID, expit)])
def test_float32_within_3_ulp(kind, exact):
    x = float32_sweep()
    ref = exact(x.astype(np.float64)).astype(np.longdouble)
    err = ulp_error(run(kind, x), ref, np.float32)
    if kind == SIGMOID:
        err = err[ref > 2e-38]      # below that the result is the bound's (vmath.h)
    assert err.max() <= MAX_ULP


@pytest.mark.parametrize("kind", [TANH, SIGMOID])
def test_float64_within_3_ulp(kind):
    x = float64_sample()
    xl = x.astype(np.longdouble)
    ref = np.tanh(xl) if kind == TANH else 1 / (1 + np.exp(-xl))
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("long double is not wider than double here")
    err = ulp_error(run(kind, x), ref, np.float64)
    if kind == SIGMOID:
        err = err[ref > 1e-307]
    assert err.max() <= MAX_ULP


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0], dtype)
    t = run(TANH, x)
    assert np.isnan(t[0])
    np.testing.assert_array_equal(t[1:], [1, -1, 1, -1, 0, 0])
    s = run(SIGMOID, x)
    assert np.isnan(s[0])
    assert s[1] == 1 and s[3] == 1 and s[5] == 0.5
    assert 0 <= s[2] < 1e-37 and 0 <= s[4] < 1e-37
    r = run(RELU, x)
    assert np.isnan(r[0])       # as np.maximum(NaN, 0) in the reference
    np.testing.assert_array_equal(r, np.maximum(x, 0))
    np.testing.assert_array_equal(run(IDENTITY, x), x)
    assert t.dtype == s.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 33, 1000])
def test_bias_is_added_and_every_length_is_covered(dtype, n):
    # Lengths around the vector widths exercise the clones' remainder loops.
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    v = (a + bias).astype(np.float64)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(run(TANH, a, bias), np.tanh(v), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(run(SIGMOID, a, bias), expit(v), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(run(RELU, a, bias), np.maximum(a + bias, 0))
    np.testing.assert_array_equal(run(IDENTITY, a, bias), a + bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivatives_through_the_output(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(101).astype(dtype)
    g = rng.standard_normal(101).astype(dtype)
    cases = {
        TANH: (np.tanh(a), lambda h: 1 - h * h),
        SIGMOID: (expit(a), lambda h: h * (1 - h)),
        RELU: (np.maximum(a, 0), lambda h: (h > 0).astype(dtype)),
        IDENTITY: (a, lambda h: np.ones_like(h)),
    }
    for kind, (h, deriv) in cases.items():
        h = h.astype(dtype)
        da = activate_grad_py(kind, h, g, np.empty_like(g))
        np.testing.assert_allclose(da, g * deriv(h), rtol=1e-6)
        assert da.dtype == np.dtype(dtype)
