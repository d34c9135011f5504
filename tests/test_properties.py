"""Property tests (hypothesis) over every function in tests/_registry.py:

- compiled equals reference within the per-dtype tolerance, for random cells, sizes
  (0 included), dtypes, layouts, lengths, nonlinearities and biases, and float32 in gives
  float32 out;
- the same call twice gives bit-identical results;
- a call with one argument replaced by junk succeeds or raises a documented exception
  (TypeError/ValueError), never anything else.

Bounded for CI: HYPOTHESIS_PROFILE=ci (the default) runs 60 examples per property with no
deadline and no example database; HYPOTHESIS_PROFILE=thorough runs 2000.
"""
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st

from _helpers import assert_close, tol_for  # noqa: E402
from _registry import LAYOUTS, NONLINEARITIES, REGISTRY, Case, flatten, mutate  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, database=None,
                          derandomize=True)
settings.register_profile("thorough", max_examples=2000, deadline=None)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sizes = st.integers(0, 6)
cases = st.builds(
    Case,
    T=sizes, B=sizes, I=sizes, H=sizes,
    dtype=st.sampled_from([np.float32, np.float64]),
    batch_first=st.booleans(),
    layout=st.sampled_from(LAYOUTS),
    lengths=st.booleans(),
    nonlinearity=st.sampled_from(NONLINEARITIES),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
entries = st.sampled_from(REGISTRY)


@settings(PROFILE)
@given(entry=entries, case=cases)
def test_compiled_equals_reference(entry, case):
    got = flatten(entry.build(case, "compiled")())
    expected = flatten(entry.build(case, "reference")())
    assert len(got) == len(expected) > 0
    rtol, atol = tol_for(case.dtype)
    for i, (a, e) in enumerate(zip(got, expected)):
        assert a.dtype == e.dtype == np.dtype(case.dtype), f"{entry.name} result {i}"
        assert_close(a, e, rtol * entry.scale, atol * entry.scale,
                     err_msg=f"{entry.name} result {i} {case}")


@settings(PROFILE)
@given(entry=entries, case=cases, impl=st.sampled_from(["compiled", "reference"]))
def test_same_call_twice_is_bit_identical(entry, case, impl):
    call = entry.build(case, impl)
    first = flatten(call())
    second = flatten(call())
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@settings(PROFILE)
@given(entry=entries, case=cases, impl=st.sampled_from(["compiled", "reference"]),
       junk_seed=st.integers(0, 2**32 - 1))
def test_junk_arguments_raise_only_documented_exceptions(entry, case, impl, junk_seed):
    call = entry.build(case, impl)
    label, bad = mutate(call, np.random.default_rng(junk_seed))
    try:
        with np.errstate(all="ignore"):
            bad()
    except entry.exceptions:
        pass
    # anything else propagates and fails the test, with `label` in hypothesis's report
