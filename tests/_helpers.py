"""Shared test helpers: random problems, per-dtype tolerances, finite differences.

Imported by the test modules as ``from _helpers import ...`` (pytest puts this folder on
sys.path because tests/ is not a package).
"""
import re
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pytest

import fastbptt
from fastbptt import reference

DTYPES = (np.float32, np.float64)

# (rtol, atol) of the compiled code against the reference, per dtype. atol is scaled by
# the magnitude of the compared array (see assert_close), so entries that cancel to near
# zero are held to the size of the terms that cancelled, not to an element-wise rtol.
TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-10)}

# The implementations under test, by name, for parametrisation.
IMPLS = {
    "compiled": (fastbptt.rnn_forward, fastbptt.rnn_backward),
    "reference": (reference.rnn_forward, reference.rnn_backward),
}

GRAD_NAMES = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")


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


def assert_grads_close(actual, expected, rtol, atol=None, err_msg="", names=GRAD_NAMES):
    """Every field `names` of two gradient records (RNNGrads by default) agrees (None where
    the other is None)."""
    for name in names:
        a, e = getattr(actual, name), getattr(expected, name)
        if e is None:
            assert a is None, f"{err_msg}: {name} should be None"
            continue
        assert a is not None, f"{err_msg}: {name} is None"
        assert a.dtype == e.dtype, f"{err_msg}: {name} dtype {a.dtype} != {e.dtype}"
        assert_close(a, e, rtol, atol, err_msg=f"{err_msg} {name}")


@dataclass
class RNNProblem:
    """One vanilla-RNN problem: forward inputs and the upstream gradients."""
    x: np.ndarray
    h0: Optional[np.ndarray]
    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: Optional[np.ndarray]
    b_hh: Optional[np.ndarray]
    dh: Optional[np.ndarray]        # like h, or None (many-to-one)
    dh_n: Optional[np.ndarray]      # (B, H) or None
    nonlinearity: str = "tanh"
    batch_first: bool = False

    def forward_args(self):
        return (self.x, self.h0, self.W_ih, self.W_hh, self.b_ih, self.b_hh)

    def forward_kwargs(self):
        return {"nonlinearity": self.nonlinearity, "batch_first": self.batch_first}

    def run(self, impl="compiled"):
        """(h, grads) from one implementation."""
        forward, backward = IMPLS[impl]
        h, cache = forward(*self.forward_args(), **self.forward_kwargs())
        return h, backward(self.dh, cache, dh_n=self.dh_n)

    def arrays(self):
        """Every array argument by name (None left out)."""
        names = ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh", "dh", "dh_n")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def with_(self, **changes):
        return replace(self, **changes)


def make_problem(T, B, I, H, dtype=np.float64, *, nonlinearity="tanh", batch_first=False,
                 bias=True, h0=True, dh=True, dh_n=True, seed=0):
    """A random, well-conditioned problem.

    W_hh is scaled to spectral radius about 0.6, so the recurrence contracts (no chaotic
    growth of rounding differences over long sequences, for relu and identity too).
    """
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    x = rand(B, T, I) if batch_first else rand(T, B, I)
    out_shape = (B, T, H) if batch_first else (T, B, H)
    return RNNProblem(
        x=x,
        h0=rand(B, H, scale=0.5) if h0 else None,
        W_ih=rand(H, I, scale=1.0 / np.sqrt(max(I, 1))),
        W_hh=rand(H, H, scale=0.6 / np.sqrt(max(H, 1))),
        b_ih=rand(H, scale=0.3) if bias else None,
        b_hh=rand(H, scale=0.3) if bias else None,
        dh=rand(*out_shape) if dh else None,
        dh_n=rand(B, H) if dh_n else None,
        nonlinearity=nonlinearity,
        batch_first=batch_first,
    )


def last_state(h, batch_first):
    """h_T, (B, H), from a forward output."""
    return h[:, -1] if batch_first else h[-1]


def preactivations(p):
    """Every a_t (T, B, H) of problem p, in float64, by the textbook loop."""
    x = p.x.transpose(1, 0, 2) if p.batch_first else p.x
    T, B, _ = x.shape
    H = p.W_hh.shape[0]
    f = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0),
         "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "identity": lambda a: a}[p.nonlinearity]
    h = np.zeros((B, H)) if p.h0 is None else p.h0.astype(np.float64)
    bias = 0.0 if p.b_ih is None else p.b_ih + p.b_hh
    out = np.empty((T, B, H))
    for t in range(T):
        out[t] = x[t] @ p.W_ih.T + h @ p.W_hh.T + bias
        h = f(out[t])
    return out


def loss(p, impl):
    """L = sum(h * dh) + sum(h_T * dh_n), the scalar whose gradient backward returns."""
    forward, _ = IMPLS[impl]
    h, _ = forward(*p.forward_args(), **p.forward_kwargs())
    total = 0.0
    if p.dh is not None:
        total += float(np.sum(h * p.dh))
    if p.dh_n is not None:
        total += float(np.sum(last_state(h, p.batch_first) * p.dh_n))
    return total


def numerical_gradient(p, name, impl, eps=1e-6, loss_of=loss):
    """dL/d(argument `name`) by central differences, one element at a time (float64);
    L = loss_of(problem, impl), by default the RNN's loss() above."""
    base = getattr(p, name)
    grad = np.empty_like(base)
    for idx in np.ndindex(base.shape):
        values = []
        for sign in (1, -1):
            perturbed = base.copy()
            perturbed[idx] += sign * eps
            values.append(loss_of(p.with_(**{name: perturbed}), impl))
        grad[idx] = (values[0] - values[1]) / (2 * eps)
    return grad


def assert_matches_finite_differences(grads, p, impl, pairs, loss_of=loss):
    """Every gradient in grads equals its central-difference estimate (float64) to 1e-6
    relative error; pairs are (gradient field, argument of p) names."""
    for grad_name, arg_name in pairs:
        analytic = getattr(grads, grad_name)
        numeric = numerical_gradient(p, arg_name, impl, loss_of=loss_of)
        assert analytic.shape == numeric.shape
        assert np.max(np.abs(numeric)) > 1e-3, f"{arg_name}: degenerate test, zero gradient"
        err = relative_error(analytic, numeric)
        assert err < 1e-6, f"{grad_name}: relative error {err:.2e}"


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
