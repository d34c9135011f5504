"""Shared test helpers: per-dtype tolerances, closeness and error-message checks, bad
lengths, a fake clock. The cell problems are in _cells.py.

Imported by the test modules as ``from _helpers import ...`` (pytest puts this folder on
sys.path because tests/ is not a package).
"""
import math
import re

import numpy as np
import pytest

DTYPES = (np.float32, np.float64)

# (rtol, atol) of the compiled code against the reference, per dtype. atol is scaled by
# the magnitude of the compared array (see assert_close), so entries that cancel to near
# zero are held to the size of the terms that cancelled, not to an element-wise rtol.
TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-10)}


def tol_for(dtype):
    """(rtol, atol) for results of this dtype."""
    return TOL[np.dtype(dtype)]


def assert_close(actual, expected, rtol, atol=None, err_msg=""):
    """|actual - expected| <= rtol |expected| + atol * max(1, max|expected|), element-wise.

    atol (rtol when not given) is relative to the array's magnitude: the natural error
    bound of sums and products of that size. Shapes must match exactly.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{err_msg}: shape {actual.shape} != expected {expected.shape}")
    if expected.size == 0:
        return
    scale = max(1.0, float(np.max(np.abs(expected.astype(np.float64)))))
    atol = rtol if atol is None else atol
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale,
                               err_msg=err_msg)


def numerical_gradient(f, x, eps=1e-6):
    """df/dx of a scalar function f of array x, by central differences, one element at a
    time (for float64 x)."""
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        values = []
        for sign in (1, -1):
            xp = x.copy()
            xp[idx] += sign * eps
            values.append(f(xp))
        grad[idx] = (values[0] - values[1]) / (2 * eps)
    return grad


def sigmoid(v):
    """The logistic function of a Python float, for hand-computed cases."""
    return 1 / (1 + math.exp(-v))


def relative_error(actual, expected):
    """max|actual - expected| / max|expected|, 0 for two zero arrays."""
    denom = max(np.max(np.abs(expected), initial=0.0), np.max(np.abs(actual), initial=0.0))
    if denom == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / denom)


def raises_naming(exc, needles, call):
    """call() raises exc whose message matches every regular expression in needles."""
    with pytest.raises(exc, match=needles[0]) as info:
        call()
    for needle in needles[1:]:
        assert re.search(needle, str(info.value)), (
            f"{needle!r} not in the message {str(info.value)!r}")


# Bad `lengths` for a problem with B = 3, T = 5: (id, lengths, exception, message regex).
BAD_LENGTHS = [
    ("short", [1, 2], ValueError, r"lengths must have shape \(B,\)"),
    ("2d", [[1, 2, 3]], ValueError, r"lengths must have shape"),
    ("above_T", [1, 2, 6], ValueError, r"lengths must lie in \[0, T\]"),
    ("negative", [1, -1, 2], ValueError, r"lengths must lie in \[0, T\]"),
    ("float", [1.0, 2.0, 3.0], TypeError, r"lengths must have an integer dtype"),
    ("bool", [True, False, True], TypeError, r"lengths must have an integer dtype"),
    ("str", "abc", TypeError, r"lengths"),
]


def assert_same_result(actual, expected, shape, dtype, err_msg=""):
    """For the empty-size tests: a problem with T, B or H zero computes nothing, so the
    compiled and reference results are equal to the bit; one with only I = 0 still runs
    its recurrence (on the biases), so they agree to the dtype's tolerance."""
    T, B, _, H = shape
    if 0 in (T, B, H):
        np.testing.assert_array_equal(actual, expected, err_msg)
    else:
        assert_close(actual, expected, *tol_for(dtype), err_msg=err_msg)


def fake_clock(monkeypatch, durations):
    """Make fastbptt.bench.harness's perf_counter report the given durations, in order:
    readings come in pairs (start, end), each pair `duration` apart."""
    from fastbptt.bench import harness
    readings = iter(np.cumsum([0.0] + [d for duration in durations for d in (duration, 0.0)]))
    monkeypatch.setattr(harness, "perf_counter", lambda: next(readings))


def central_differences(loss, array, eps=1e-6):
    """d loss() / d array by central differences, perturbing `array` in place one entry
    at a time (and restoring it): for gradients whose loss is any closure."""
    numeric = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        keep = array[idx]
        array[idx] = keep + eps
        up = loss()
        array[idx] = keep - eps
        down = loss()
        array[idx] = keep
        numeric[idx] = (up - down) / (2 * eps)
    return numeric
