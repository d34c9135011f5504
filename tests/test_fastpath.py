"""The driver's compiled fast path (cells/_fastpath.pyx) against its general Python path.

The fast path decides only "this call is the common case and all is fine"; everything else
goes to the general path, which raises. So for every cell, dtype and layout: a common call
gives bit-identical results on both paths, a call that breaks one check raises the same
exception with the same message on both, and the common case does take the fast path
(the general checks are never called for it) while the others do not.
"""
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pytest

from _registry import Case, spec_arrays
from fastbptt.cells import driver
from fastbptt.cells.spec import (
    GEMV_ROWS,
    PACKED_MIN_STEPS,
    PACKED_MIN_STEPS_ROWS,
    PACKED_ROWS,
    SPECS,
    STEP_FORMS,
    step_form,
)
from fastbptt.runtime.packing import packer

SPEC_LIST = list(SPECS.values())
DTYPES = (np.float32, np.float64)


class _NoFastPath:
    """Stands in for _fastpath: never the common case, so the general path runs."""
    @staticmethod
    def forward(*args):
        return None

    backward = step = forward


@pytest.fixture
def general(monkeypatch):
    """Run the block's calls on the general path only."""
    def use():
        monkeypatch.setattr(driver, "_fastpath", _NoFastPath)
    return use


def _problem(spec, dtype, B=2, T=3, I=4, H=5, batch_first=False, bias=True, seed=0):
    case = Case(T=T, B=B, I=I, H=H, dtype=dtype, batch_first=batch_first, bias=bias,
                seed=seed)
    arrays, _, upstream = spec_arrays(spec, case)
    return arrays, upstream


def _forward(spec, arrays, **options):
    return driver.forward(spec, arrays["x"], tuple(arrays[s] for s in spec.initial_states),
                          arrays["W_ih"], arrays["W_hh"], arrays["b_ih"], arrays["b_hh"],
                          options.get("batch_first", False), options.get("lengths"),
                          options.get("check_finite", False), options.get("checkpoint"),
                          options.get("nonlinearity",
                                      "tanh" if "nonlinearity" in spec.options else None))


def _backward(spec, upstream, cache, check_finite=False):
    return driver.backward(spec, upstream["dh"], cache,
                           tuple(upstream.get(f) for f in spec.final_grads), check_finite)


def _both(call, general, monkeypatch):
    """call() on the fast path, then on the general path."""
    fast = call()
    general()
    slow = call()
    monkeypatch.undo()
    return fast, slow


def _assert_identical(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    assert type(a) is type(b)
    assert a.dtype == b.dtype and a.shape == b.shape and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)


# (T, B, H) candidates: GEMV rows, the packed form at few rows (PACKED_MIN_STEPS steps)
# and past them, past PACKED_ROWS the transposed (where the spec allows it) and plain forms
_FORM_SHAPES = ((3, 1, 5), (PACKED_MIN_STEPS, 1, 5), (3, GEMV_ROWS + 1, 12),
                (2, PACKED_ROWS + 1, 70), (2, PACKED_ROWS + 1, 8))


def _form_cases():
    """(spec, dtype, T, B, H) covering each step form of each cell and dtype as this
    process's policy (spec.step_form with its packer) gives them."""
    cases = []
    for spec in SPEC_LIST:
        for dtype in DTYPES:
            for T, B, H in _FORM_SHAPES:
                cases.append((spec, dtype, T, B, H))
            forms = {step_form(spec, B, H, dtype, packer(), T)
                     for _, _, T, B, H in cases[-len(_FORM_SHAPES):]}
            assert forms == (set(STEP_FORMS) if np.dtype(dtype) in spec.transposed_dtypes
                             else set(STEP_FORMS) - {"transposed"}), (spec, dtype, forms)
    return cases


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("spec,dtype,T,B,H", _form_cases(),
                         ids=lambda v: getattr(v, "name", getattr(v, "__name__", str(v))))
def test_fast_and_general_path_give_identical_results(spec, dtype, T, B, H, batch_first,
                                                       bias, general, monkeypatch):
    arrays, upstream = _problem(spec, dtype, B=B, T=T, H=H, batch_first=batch_first,
                                bias=bias)
    if batch_first:
        upstream["dh"] = np.ascontiguousarray(upstream["dh"])

    def run():
        h, cache = _forward(spec, arrays, batch_first=batch_first)
        return h, cache, _backward(spec, upstream, cache)

    (h_fast, cache_fast, g_fast), (h_slow, cache_slow, g_slow) = _both(run, general,
                                                                      monkeypatch)
    _assert_identical(h_fast, h_slow)
    assert cache_fast.form == cache_slow.form
    for a, b in zip(cache_fast.states, cache_slow.states):
        _assert_identical(a, b)
    _assert_identical(cache_fast.kept, cache_slow.kept)
    assert cache_fast.args._replace(h0=None, c0=None, b_ih=None, b_hh=None) == \
        cache_slow.args._replace(h0=None, c0=None, b_ih=None, b_hh=None)
    assert type(g_fast) is type(g_slow)
    for a, b in zip(g_fast, g_slow):
        _assert_identical(a, b)


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_common_case_takes_the_fast_path(spec, dtype, monkeypatch):
    """With the general checks made to fail, the common forward, backward and step still
    run: they never reach them. Options off the common case do reach them."""
    arrays, upstream = _problem(spec, dtype)
    reached = []

    def refuse(*args, **kwargs):
        reached.append(True)
        raise AssertionError("the general path ran")

    monkeypatch.setattr(driver, "check_forward_args", refuse)
    monkeypatch.setattr(driver, "check_backward_args", refuse)
    h, cache = _forward(spec, arrays)
    grads = _backward(spec, upstream, cache)
    assert h.dtype == dtype and grads.dW_hh.dtype == dtype
    one_step = {**arrays, "x": arrays["x"][:1].copy()}
    new = driver.step(spec, one_step["x"], tuple(one_step[s] for s in spec.initial_states),
                      one_step["W_ih"], one_step["W_hh"], one_step["b_ih"], one_step["b_hh"],
                      "tanh" if "nonlinearity" in spec.options else None)
    assert len(new) == len(spec.states) and not reached
    for options in ({"lengths": np.full(arrays["x"].shape[1], 2)}, {"check_finite": True},
                    {"checkpoint": 2}):
        with pytest.raises(AssertionError, match="the general path ran"):
            _forward(spec, arrays, **options)
    with pytest.raises(AssertionError, match="the general path ran"):
        _backward(spec, upstream, cache, check_finite=True)


def _bad_calls(spec, dtype):
    """(id, forward arguments, backward upstream) each breaking one check."""
    arrays, upstream = _problem(spec, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    cases = []

    def add(name, **changes):
        bad_arrays = {**arrays, **{k: v for k, v in changes.items() if k in arrays}}
        bad_up = {**upstream, **{k: v for k, v in changes.items() if k in upstream}}
        cases.append((name, bad_arrays, bad_up, changes.get("options", {})))

    for name in ("x", "W_ih", "W_hh", "b_ih", "b_hh", *spec.initial_states, "dh",
                 *spec.final_grads):
        value = arrays.get(name, upstream.get(name))
        add(f"{name}-dtype", **{name: value.astype(other)})
        add(f"{name}-int", **{name: value.astype(np.int64)})
        add(f"{name}-shape", **{name: np.concatenate([value, value[:1]])})
        add(f"{name}-ndim", **{name: value[None]})
        add(f"{name}-list", **{name: value.tolist()})
        add(f"{name}-swapped", **{name: value.astype(value.dtype.newbyteorder())})
        add(f"{name}-nan", options={"check_finite": True},
            **{name: np.where(np.ones_like(value, bool), np.nan, value).astype(dtype)})
        if value.ndim > 1:
            # non-contiguous, Fortran order: the general path copies them, same numbers
            add(f"{name}-strided", **{name: np.repeat(value, 2, axis=-1)[..., ::2]})
            add(f"{name}-fortran", **{name: np.asfortranarray(value)})
    add("one-bias", b_hh=None)
    add("no-gradient", dh=None, **{f: None for f in spec.final_grads})
    add("batch_first-int", options={"batch_first": 1})
    add("check_finite-str", options={"check_finite": "yes"})
    if "nonlinearity" in spec.options:
        add("nonlinearity", options={"nonlinearity": "softsign"})
    # aliasing: one array passed for several arguments (read only, so allowed)
    add("aliased-biases", b_hh=arrays["b_ih"])
    add("aliased-states", **{s: arrays["h0"] for s in spec.initial_states})
    return cases


def _outcome(call):
    """("ok", the results flattened) or (the exception's type, its message)."""
    try:
        result = call()
    except Exception as exc:   # the point: which exception, with which message
        return type(exc), str(exc)
    flat = []
    for part in result:
        flat.extend(part if isinstance(part, tuple) else [part])
    return "ok", flat


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_check_gives_the_same_outcome_on_both_paths(spec, dtype, general, monkeypatch):
    for name, arrays, upstream, options in _bad_calls(spec, dtype):
        fwd_options = {k: v for k, v in options.items()}

        def run():
            h, cache = _forward(spec, arrays, **fwd_options)
            grads = _backward(spec, upstream, cache,
                              check_finite=fwd_options.get("check_finite", False))
            return h, tuple(grads)

        fast, slow = _both(lambda: _outcome(run), general, monkeypatch)
        assert fast[0] == slow[0], (name, fast[0], slow[0])
        if fast[0] == "ok":
            for a, b in zip(fast[1], slow[1]):
                _assert_identical(a, b)
        else:
            assert fast[1] == slow[1], name


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
def test_a_wrong_cache_gives_the_same_error(spec, general, monkeypatch):
    others = [s for s in SPEC_LIST if s is not spec]
    arrays, upstream = _problem(others[0], np.float32)
    _, cache = _forward(others[0], arrays)
    up = {"dh": upstream["dh"]}
    for wrong in (cache, object(), None, "cache"):
        fast, slow = _both(lambda: _outcome(lambda: (_backward(spec, up, wrong),)),
                           general, monkeypatch)
        assert fast == slow and fast[0] is TypeError


def test_the_fast_path_reads_cellargs_fields_where_they_are():
    """The fast path builds and reads a CellArgs by position: its field order is pinned,
    and install() refuses a CellArgs whose fields moved."""
    from fastbptt.cells import _fastpath
    from fastbptt.cells.args import CellArgs
    assert CellArgs._fields == _fastpath.ARGS_FIELDS

    class Moved(NamedTuple):
        x: object
        spec: object

    with pytest.raises(RuntimeError, match="by position"):
        _fastpath.install(specs=(), compiled_cache=None, cell_args=Moved,
                          workspace_globals={}, nonlinearity_codes={}, driver_globals={},
                          policy=None, validation_globals={})


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
def test_a_cache_with_other_args_leaves_the_fast_path(spec, general, monkeypatch):
    """A CompiledCache whose args are not an exact CellArgs (the fast path reads its
    fields by position) goes to the general path, which says what is wrong."""
    arrays, upstream = _problem(spec, np.float32)
    _, cache = _forward(spec, arrays)
    # a plain tuple of the same fields (read by name, it has none), and no tuple at all
    for other in (tuple(cache.args), object()):
        cache.args = other
        fast, slow = _both(lambda: _outcome(lambda: (_backward(spec, upstream, cache),)),
                           general, monkeypatch)
        assert fast == slow and fast[0] is AttributeError


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
def test_step_matches_the_general_path(spec, general, monkeypatch):
    arrays, _ = _problem(spec, np.float32, T=1, B=3, H=6)

    def run():
        return tuple(driver.step(spec, arrays["x"],
                                 [arrays[s] for s in spec.initial_states], arrays["W_ih"],
                                 arrays["W_hh"], arrays["b_ih"], arrays["b_hh"],
                                 "tanh" if "nonlinearity" in spec.options else None))

    fast, slow = _both(run, general, monkeypatch)
    for a, b in zip(fast, slow):
        _assert_identical(a, b)
    two_steps = {**arrays, "x": np.concatenate([arrays["x"], arrays["x"]])}
    with pytest.raises(ValueError, match="x must hold one time step"):
        driver.step(spec, two_steps["x"], [two_steps[s] for s in spec.initial_states],
                    two_steps["W_ih"], two_steps["W_hh"], None, None,
                    "tanh" if "nonlinearity" in spec.options else None)


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
def test_the_fast_path_obeys_a_replaced_step_form(spec, monkeypatch):
    """The fast path computes spec.step_form in C; a policy put in the driver's step_form
    (as the step-form tests force one) is obeyed."""
    assert set(STEP_FORMS) == {"gemv", "packed", "transposed", "plain"}
    arrays, _ = _problem(spec, np.float64, B=GEMV_ROWS + 2, H=12)
    assert arrays["x"].shape[0] > 1   # one step is never packed (driver._run_kernel)
    _, cache = _forward(spec, arrays)
    assert cache.form == step_form(spec, GEMV_ROWS + 2, 12, np.float64, packer(),
                                   arrays["x"].shape[0]) == "packed"
    forced = replace(spec, transposed_dtypes=(np.dtype(np.float64),))
    monkeypatch.setattr(driver, "step_form",
                        lambda s, B, H, dtype, packer, steps: step_form(forced, B, H, dtype))
    _, cache = _forward(spec, arrays)
    assert cache.form == "transposed"


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
@pytest.mark.parametrize("general", [False, True], ids=["fast", "general"])
def test_one_step_is_not_packed(spec, general, monkeypatch):
    """At T = 1 packing W_hh costs more than the one product it serves: both paths run the
    step unpacked (so driver.step and the Stepper make the same products), and from T = 2
    on the packed form's rows run packed."""
    if general:
        monkeypatch.setattr(driver._fastpath, "forward", lambda *args: None)
    B = GEMV_ROWS + 2
    arrays, _ = _problem(spec, np.float64, T=1, B=B, H=12)
    _, cache = _forward(spec, arrays)
    assert cache.form == step_form(spec, B, 12, np.float64) != "packed"
    arrays, _ = _problem(spec, np.float64, T=2, B=B, H=12)
    _, cache = _forward(spec, arrays)
    assert cache.form == "packed"


@pytest.mark.parametrize("spec", SPEC_LIST, ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_fast_path_chooses_as_spec_step_form(spec, dtype, monkeypatch):
    """The fast path's C step_form gives spec.step_form's form (with the process's packer
    and T) around each of its bounds: one step, PACKED_MIN_STEPS(_ROWS) at GEMV_ROWS rows and
    fewer, and the packed rows' ends."""
    reached = []

    def refuse(*args, **kwargs):
        reached.append(True)
        raise AssertionError("the general path ran")

    monkeypatch.setattr(driver, "check_forward_args", refuse)
    seen = set()
    for T in (1, 2, PACKED_MIN_STEPS_ROWS - 1, PACKED_MIN_STEPS_ROWS, PACKED_MIN_STEPS - 1,
              PACKED_MIN_STEPS, PACKED_MIN_STEPS + 1):
        for B in (1, 2, GEMV_ROWS, GEMV_ROWS + 1, PACKED_ROWS, PACKED_ROWS + 1):
            arrays, _ = _problem(spec, dtype, T=T, B=B, H=7)
            _, cache = _forward(spec, arrays)
            assert cache.form == step_form(spec, B, 7, dtype, packer(), T), (T, B)
            seen.add(cache.form)
    assert not reached
    assert {"gemv", "packed"} <= seen
