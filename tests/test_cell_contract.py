"""What every recurrent cell promises, for every CellSpec in fastbptt.cells.spec.SPECS:
the compiled functions agree with their reference twins and with torch.nn; gradients
match finite differences; float32 in gives float32 out; batch-first is the transpose of
time-major; any memory layout gives the same bits; variable lengths act as separate
runs; empty sizes compute what nothing running leaves; bad input is refused naming the
argument; the caller's arrays are never written; results are the caller's, repeatable
and, at a fixed thread count, bit-identical.

The cells enter only through their spec (gates, states, options, Grads fields, torch
name, bias layout, step-form policy); what is truly one cell's (its equations on a
hand-checked case, relu's kink) stays in test_rnn.py, test_lstm.py and test_gru.py. The
shapes meant to reach each per-step product form are made from the policy (_cells.
form_cases) and test_oracle_shapes_cover_every_step_form checks that they do.
"""
import numpy as np
import pytest

import fastbptt
from _cells import (
    OPTION_ERRORS,
    OPTION_VALUES,
    SMOOTH_OPTION_VALUES,
    SPEC_LIST,
    TORCH_OPTION_VALUES,
    apply_policy,
    assert_matches_finite_differences,
    assert_ran,
    dtype_param,
    few_rows_packed_case,
    final_states,
    force_transposed,
    form_cases,
    functions,
    gate_rows,
    impl_param,
    layout_param,
    make_problem,
    modes,
    option_sets,
    options_id,
    process_step_form,
    shapes_param,
    upstream_names,
)
from _helpers import (
    BAD_LENGTHS,
    DTYPES,
    assert_close,
    assert_same_result,
    raises_naming,
    tol_for,
)
from fastbptt.cells.spec import STEP_FORMS

bias_param = pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])


def _param(name, values, ids):
    return pytest.mark.parametrize(name, values, ids=ids)


def cells(options=None, mode=None):
    """Parametrise over "spec" and, when asked, "options" (every combination of the values
    in the dict `options`, from _cells.OPTION_VALUES and its subsets) and "mode" (which
    upstream gradients backward gets: True for every mode of the spec, or a tuple of
    mode names to keep)."""
    rows = []
    for spec in SPEC_LIST:
        opts = option_sets(spec, options) if options is not None else [None]
        ms = [None] if mode is None else [m for m in modes(spec)
                                         if mode is True or m in mode]
        rows += [(spec, o, m) for o in opts for m in ms]
    names = ["spec"] + (["options"] if options is not None else []) \
        + (["mode"] if mode is not None else [])
    keep = [0] + ([1] if options is not None else []) + ([2] if mode is not None else [])
    values = [tuple(r[i] for i in keep) for r in rows]
    ids = ["-".join([r[0].name] + ([options_id(r[1])] if options is not None else [])
                    + ([r[2]] if mode is not None else [])) for r in rows]
    return pytest.mark.parametrize(",".join(names), values if len(names) > 1
                                   else [v[0] for v in values], ids=ids)


def form_param(cases):
    return _param("case", cases, [c.id for c in cases])


def assert_grads_close(spec, actual, expected, rtol, atol=None, err_msg=""):
    """Every field of two Grads records agrees (None where the other is None)."""
    for name in spec.grads._fields:
        a, e = getattr(actual, name), getattr(expected, name)
        if e is None:
            assert a is None, f"{err_msg}: {name} should be None"
            continue
        assert a is not None, f"{err_msg}: {name} is None"
        assert a.dtype == e.dtype, f"{err_msg}: {name} dtype {a.dtype} != {e.dtype}"
        assert_close(a, e, rtol, atol, err_msg=f"{err_msg} {name}")


def assert_grads_equal(spec, actual, expected, err_msg=""):
    for name in spec.grads._fields:
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name),
                                      err_msg=f"{err_msg} {name}")


def compare_to_reference(p, case=None, err_msg=""):
    """Compiled and reference: h, the final states and every gradient, to the dtype's
    tolerance, in the input's dtype; the compiled run went the case's step form."""
    h, cache = p.forward("compiled")
    if case is not None:
        assert_ran(case, cache)
    finals, grads = final_states(p.spec, cache), p.backward(cache)
    h_r, finals_r, grads_r = p.run("reference")
    rtol, atol = tol_for(p.dtype)
    assert h.dtype == h_r.dtype == p.dtype
    assert_close(h, h_r, rtol, atol, err_msg=f"{err_msg} h")
    for s, a, e in zip(p.spec.states, finals, finals_r):
        assert a.dtype == p.dtype
        assert_close(a, e, rtol, atol, err_msg=f"{err_msg} {s}_n")
    assert_grads_close(p.spec, grads, grads_r, rtol, atol, err_msg=err_msg)


# ---------------------------------------------------------------- the shapes of each oracle

# Edge sizes, with what each is for (the step forms come from form_cases below):
#   batch-first dW_hh: one GEMM (B == 1), one per step (T <= B), one per sequence (T > B);
#   the transposed step's 8 x 8 tiles of transpose.h with both edges, and whole tiles only.
EDGE_SHAPES = [
    (1, 1, 1, 1),      # every size 1
    (1, 3, 5, 2),      # one step, B > H
    (7, 1, 3, 5),      # B = 1, I != H
    (5, 4, 6, 3),      # B > H, batch-first T > B
    (13, 2, 1, 9),     # I = 1
    (3, 6, 4, 5),      # batch-first T <= B
    (2, 3, 4, 6),      # T <= B < H
    (6, 5, 3, 5),      # B == H
    (4, 9, 3, 19),     # tiles and both edges (transposed where the policy allows)
    (3, 16, 5, 24),    # whole tiles only
    (300, 2, 8, 8),    # long sequence
]

# compiled == reference: every edge shape, and one shape per step form at every dtype
# (and the packed form at one row, which takes PACKED_MIN_STEPS steps)
REFERENCE_CASES = [c for s in SPEC_LIST for dt in DTYPES
                   for c in form_cases(s, dt, 6, 3, 11) + [few_rows_packed_case(s, dt, 3, 11)]]
# finite differences (float64) and torch.nn: one small shape per step form
FD_CASES = [c for s in SPEC_LIST
            for c in form_cases(s, np.float64, 4, 3, 6) + [few_rows_packed_case(s, np.float64,
                                                                                 2, 5)]]
TORCH_CASES = [c for s in SPEC_LIST for dt in DTYPES for c in form_cases(s, dt, 5, 4, 7)]
# variable lengths: (T, B, I, H) per step form, lengths from 0 to T
LENGTH_CASES = [c for s in SPEC_LIST for dt in DTYPES for c in form_cases(s, dt, 7, 3, 10)]

ORACLES = {"reference": REFERENCE_CASES, "finite_differences": FD_CASES,
           "torch": TORCH_CASES, "lengths": LENGTH_CASES}


@pytest.mark.parametrize("oracle", list(ORACLES))
def test_oracle_shapes_cover_every_step_form(oracle):
    """Each oracle runs every per-step product form for every cell and dtype it uses:
    the shape lists are derived from step_form, and the policy gives each its form."""
    cases = ORACLES[oracle]
    for spec in SPEC_LIST:
        for dtype in {c.dtype for c in cases if c.spec is spec}:
            mine = [c for c in cases if c.spec is spec and c.dtype == dtype]
            assert {c.runs() for c in mine} == set(STEP_FORMS), (oracle, spec, dtype)
            for c in mine:
                assert c.runs() == c.form, c.id
                # forcing is only for forms the spec's own policy never runs in this dtype
                T, B, I, H = c.shape
                assert c.forced == (process_step_form(spec, B, H, dtype, T) != c.form), c.id


def _lengths_for(case, seed):
    """Lengths from 0 to T, 0 and T included (at B >= 2)."""
    T, B = case.shape[:2]
    lengths = np.random.default_rng(seed).integers(0, T + 1, size=B)
    lengths[0] = T
    if B > 1:
        lengths[1] = 0
    return lengths


# ---------------------------------------------------------------- compiled == reference

@cells(options=OPTION_VALUES, mode=True)
@layout_param
@dtype_param
@shapes_param(EDGE_SHAPES)
def test_matches_reference(spec, options, mode, shape, dtype, batch_first):
    p = make_problem(spec, *shape, dtype, options=options, batch_first=batch_first,
                     upstream=modes(spec)[mode], seed=sum(shape))
    compare_to_reference(p)


@form_param(REFERENCE_CASES)
@layout_param
def test_matches_reference_in_every_step_form(case, batch_first, monkeypatch):
    apply_policy(case, monkeypatch)
    for mode, upstream in modes(case.spec).items():
        p = make_problem(case.spec, *case.shape, case.dtype, batch_first=batch_first,
                         upstream=upstream, seed=2)
        compare_to_reference(p, case, err_msg=mode)


def _initial_subsets(spec):
    """Every subset of the initial states given (the others None)."""
    names = spec.initial_states
    return [tuple(n for i, n in enumerate(names) if mask >> i & 1)
            for mask in range(2 ** len(names))]


def _bias_split(spec, H):
    """Which entries of db_ih and db_hh are the same kernel gradient entry (spec.split_db
    applied to the entries' indices): those must be equal to the bit, the others not."""
    db_ih, db_hh = spec.split_db(np.arange(spec.work_gates * H), H)
    return db_ih == db_hh


_INITIAL_ROWS = [(s, initial) for s in SPEC_LIST for initial in _initial_subsets(s)]


@_param("spec,initial", _INITIAL_ROWS,
        [f"{s.name}-{'_'.join(i) or 'None'}" for s, i in _INITIAL_ROWS])
@bias_param
@layout_param
@dtype_param
@shapes_param(EDGE_SHAPES)
def test_matches_reference_bias_and_initial_states(spec, initial, shape, dtype, batch_first,
                                                   bias):
    p = make_problem(spec, *shape, dtype, batch_first=batch_first, bias=bias,
                     initial=initial, seed=1 + sum(shape))
    compare_to_reference(p)
    _, _, grads = p.run("compiled")
    if not bias:
        assert grads.db_ih is None and grads.db_hh is None
        return
    shared = _bias_split(spec, shape[3])
    np.testing.assert_array_equal(grads.db_ih[shared], grads.db_hh[shared])
    if shape[0] * shape[1] > 1 and not shared.all():
        # a bias inside a gate's product (the GRU's b_hn) gets its own gradient
        assert not np.allclose(grads.db_ih[~shared], grads.db_hh[~shared])


# ---------------------------------------------------------------- finite differences

def _fd_cases_with_options():
    return [(c, o) for c in FD_CASES for o in option_sets(c.spec, SMOOTH_OPTION_VALUES)]


@_param("case,options", _fd_cases_with_options(),
        [f"{c.id}-{options_id(o)}" for c, o in _fd_cases_with_options()])
@impl_param
@layout_param
def test_gradients_match_finite_differences(case, options, batch_first, impl, monkeypatch):
    apply_policy(case, monkeypatch)
    p = make_problem(case.spec, *case.shape, np.float64, options=options,
                     batch_first=batch_first, seed=3)
    assert_matches_finite_differences(p, impl, case)


@form_param(FD_CASES)
@_param("mode", ["many_to_many", "all"], ["many_to_many", "all"])
@impl_param
@layout_param
def test_gradients_with_lengths_match_finite_differences(case, mode, batch_first, impl,
                                                         monkeypatch):
    apply_policy(case, monkeypatch)
    p = make_problem(case.spec, *case.shape, np.float64, batch_first=batch_first,
                     upstream=modes(case.spec)[mode], lengths=_lengths_for(case, 4), seed=4)
    assert_matches_finite_differences(p, impl, case)


# ---------------------------------------------------------------- dtypes

@cells()
@impl_param
@bias_param
@layout_param
@dtype_param
@shapes_param([(4, 3, 2, 5), (3, 1, 4, 2), (0, 2, 3, 4), (3, 2, 0, 4), (4, 6, 2, 5)])
def test_dtype_in_is_dtype_out(spec, shape, dtype, batch_first, bias, impl):
    for lengths in (None, np.minimum(np.arange(shape[1]), shape[0])):
        for upstream in modes(spec).values():
            p = make_problem(spec, *shape, dtype, batch_first=batch_first, bias=bias,
                             initial=(), upstream=upstream, lengths=lengths)
            h, finals, grads = p.run(impl)
            assert h.dtype == np.dtype(dtype)
            assert all(f.dtype == np.dtype(dtype) for f in finals)
            for name in spec.grads._fields:
                g = getattr(grads, name)
                if name.startswith("db") and not bias:
                    assert g is None
                else:
                    assert g.dtype == np.dtype(dtype), f"{name} is {g.dtype}"


# ---------------------------------------------------------------- layouts

def _to_batch_first(p):
    def flip(a):
        return None if a is None else np.ascontiguousarray(a.transpose(1, 0, 2))
    return p.with_(x=flip(p["x"]), dh=flip(p["dh"]), batch_first=True)


@cells(mode=True)
@impl_param
@dtype_param
@shapes_param(EDGE_SHAPES)
def test_batch_first_is_the_transpose_of_time_major(spec, mode, shape, dtype, impl):
    """h, the final states and the initial states' gradients are bit-identical (the same
    per-step recurrence in the same order); dx and the parameter gradients come from one
    GEMM each over the T*B rows in the other order, and the BLAS may round a row
    differently by where it falls in its blocking, so they are equal to a few ulp."""
    tm = make_problem(spec, *shape, dtype, upstream=modes(spec)[mode], seed=5)
    bf = _to_batch_first(tm)
    h_tm, f_tm, g_tm = tm.run(impl)
    h_bf, f_bf, g_bf = bf.run(impl)
    T, B, I, H = shape
    assert h_bf.shape == (B, T, H) and g_bf.dx.shape == (B, T, I)
    np.testing.assert_array_equal(h_bf, h_tm.transpose(1, 0, 2))
    for a, b in zip(f_bf, f_tm):
        np.testing.assert_array_equal(a, b)
    for s in spec.initial_states:
        np.testing.assert_array_equal(getattr(g_bf, f"d{s}"), getattr(g_tm, f"d{s}"))
    ulps = 64 * np.finfo(dtype).eps
    assert_close(g_bf.dx, g_tm.dx.transpose(1, 0, 2), ulps, err_msg="dx")
    for name in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert_close(getattr(g_bf, name), getattr(g_tm, name), ulps, err_msg=name)


# ---------------------------------------------------------------- strides and aliasing

STRIDED_SHAPE = (5, 6, 4, 7)    # no size-1 axis, so every view below really is strided
VIEW_KINDS = ("reversed", "sliced", "fortran", "transposed", "read_only")


def view(a, kind):
    """a's values in another memory layout."""
    if kind == "reversed":                      # negative stride on axis 0
        v = np.ascontiguousarray(a[::-1])[::-1]
    elif kind == "sliced":                      # every other element
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        v = wide[..., ::2]
    elif kind == "fortran":
        v = np.asfortranarray(a)
    elif kind == "transposed":                  # every axis reversed in memory
        perm = tuple(reversed(range(a.ndim)))
        v = np.ascontiguousarray(a.transpose(perm)).transpose(perm)
    else:
        v = a.copy()
        v.setflags(write=False)
    np.testing.assert_array_equal(v, a)
    if kind != "read_only" and (a.ndim > 1 or kind != "fortran" and kind != "transposed"):
        assert not v.flags.c_contiguous, kind
    return v


def _strided_problem(spec, batch_first, seed):
    return make_problem(spec, *STRIDED_SHAPE, np.float64, batch_first=batch_first, seed=seed)


def _assert_same_run(spec, got, want, err_msg=""):
    h, finals, grads = got
    h_w, finals_w, grads_w = want
    np.testing.assert_array_equal(h, h_w, err_msg=f"{err_msg} h")
    for s, a, b in zip(spec.states, finals, finals_w):
        np.testing.assert_array_equal(a, b, err_msg=f"{err_msg} {s}_n")
    assert_grads_equal(spec, grads, grads_w, err_msg)


def _argument_cases():
    rows = [(s, name) for s in SPEC_LIST
            for name in make_problem(s, 1, 1, 1, 1).given()]
    return _param("spec,arg", rows, [f"{s.name}-{n}" for s, n in rows])


@_argument_cases()
@impl_param
@layout_param
def test_noncontiguous_argument_gives_the_same_answer(spec, arg, batch_first, impl):
    p = _strided_problem(spec, batch_first, 11)
    want = p.run(impl)
    for kind in VIEW_KINDS:
        _assert_same_run(spec, p.with_(**{arg: view(p[arg], kind)}).run(impl), want,
                         f"{arg} {kind}")


@cells()
@_param("kind", VIEW_KINDS, VIEW_KINDS)
@impl_param
@layout_param
def test_every_argument_in_another_layout_at_once(spec, kind, batch_first, impl):
    p = _strided_problem(spec, batch_first, 13)
    want = p.run(impl)
    views = {name: view(a, kind) for name, a in p.given().items()}
    _assert_same_run(spec, p.with_(**views).run(impl), want, kind)


@cells()
@impl_param
@layout_param
def test_mixed_layouts_at_once(spec, batch_first, impl):
    p = _strided_problem(spec, batch_first, 13)
    want = p.run(impl)
    views = {name: view(a, VIEW_KINDS[i % len(VIEW_KINDS)])
             for i, (name, a) in enumerate(p.given().items())}
    _assert_same_run(spec, p.with_(**views).run(impl), want, "mixed")


@cells()
@impl_param
@layout_param
def test_broadcast_arguments(spec, batch_first, impl):
    """Zero-stride views (read-only, overlapping) are read, never written."""
    T, B, I, H = STRIDED_SHAPE
    G = spec.gates
    p = _strided_problem(spec, batch_first, 12)
    row = np.linspace(-1, 1, H)
    changes = {s: np.broadcast_to(row, (B, H)) for s in spec.initial_states}
    changes.update({g: np.broadcast_to(row[::-1], (B, H)) for g in spec.final_grads})
    changes["b_ih"] = np.broadcast_to(0.1, (G * H,))
    q = p.with_(**changes)
    copied = q.with_(**{n: np.array(a) for n, a in changes.items()})
    _assert_same_run(spec, q.run(impl), copied.run(impl), "broadcast")


CALLER_SHAPES = [STRIDED_SHAPE, (4, 1, 3, 5), (4, 2, 3, 5), (4, 9, 3, 19)]
caller_shape_param = shapes_param(CALLER_SHAPES)


@cells()
@impl_param
@layout_param
@dtype_param
@caller_shape_param
def test_caller_arrays_are_never_modified(spec, shape, dtype, batch_first, impl):
    p = make_problem(spec, *shape, dtype, batch_first=batch_first, seed=14)
    for q in (p, p.with_(lengths=np.arange(shape[1]) % (shape[0] + 1))):
        before = {n: a.copy() for n, a in q.given().items()}
        lengths_before = None if q.lengths is None else q.lengths.copy()
        _, cache = q.forward(impl)
        for n, a in q.given().items():
            np.testing.assert_array_equal(a, before[n], err_msg=f"forward wrote into {n}")
        for given in [upstream_names(spec), *((g,) for g in upstream_names(spec))]:
            q.backward(cache, impl, given)
        for n, a in q.given().items():
            np.testing.assert_array_equal(a, before[n], err_msg=f"backward wrote into {n}")
        if lengths_before is not None:
            np.testing.assert_array_equal(q.lengths, lengths_before)


@cells()
@impl_param
@layout_param
@caller_shape_param
def test_backward_twice_gives_identical_results(spec, shape, batch_first, impl):
    p = make_problem(spec, *shape, batch_first=batch_first, seed=15)
    _, cache = p.forward(impl)
    first = p.backward(cache, impl)
    saved = [g.copy() for g in first]
    for g in first:          # results are the caller's: scribbling on them changes nothing
        g[...] = np.nan
    second = p.backward(cache, impl)
    for name, a, b in zip(spec.grads._fields, saved, second):
        np.testing.assert_array_equal(b, a, err_msg=name)


@cells()
@impl_param
@layout_param
@shapes_param([STRIDED_SHAPE, (4, 1, 3, 5), (3, 2, 0, 4)])
def test_modifying_returned_h_does_not_change_backward(spec, shape, batch_first, impl):
    """h is a new array: the caller may edit it in place (h *= mask) before backward."""
    p = make_problem(spec, *shape, batch_first=batch_first, seed=16)
    _, cache = p.forward(impl)
    expected = p.backward(cache, impl)
    h, cache = p.forward(impl)
    h[...] = 0.5
    assert_grads_equal(spec, p.backward(cache, impl), expected, "after writing into h")


@cells()
@impl_param
@layout_param
@shapes_param([STRIDED_SHAPE, (4, 1, 3, 5), (1, 1, 1, 1)])
def test_outputs_are_fresh_arrays(spec, shape, batch_first, impl):
    """h, the final states and every gradient are new C-contiguous writeable arrays that
    share memory with no input and no other output; writing into them changes neither
    the cache's final states nor a second backward."""
    p = make_problem(spec, *shape, batch_first=batch_first, seed=17)
    h, cache = p.forward(impl)
    finals = final_states(spec, cache)
    first = p.backward(cache, impl)
    outputs = {"h": h, **{f"{s}_n": f for s, f in zip(spec.states, finals)},
               **first._asdict()}
    for on, o in outputs.items():
        assert isinstance(o, np.ndarray) and o.flags.c_contiguous and o.flags.writeable, on
        for iname, i in p.given().items():
            assert not np.shares_memory(o, i), f"{on} aliases the input {iname}"
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.shares_memory(outputs[a], outputs[b]), f"{a} aliases {b}"
    saved_finals = [f.copy() for f in finals]
    saved = [g.copy() for g in first]
    for o in outputs.values():
        o[...] = np.nan
    for name, a, b in zip(spec.grads._fields, saved, p.backward(cache, impl)):
        np.testing.assert_array_equal(b, a, err_msg=name)
    for s, a, b in zip(spec.states, saved_finals, final_states(spec, cache)):
        np.testing.assert_array_equal(b, a, err_msg=f"{s}_n")


# ---------------------------------------------------------------- determinism

@form_param([c for c in REFERENCE_CASES])
@_param("threads", [1, 2], ["1_thread", "2_threads"])
def test_fixed_thread_count_is_bit_identical(case, threads, monkeypatch):
    """At a fixed BLAS thread count, forward twice gives the same bits, and backward of
    either cache, twice, gives the same bits (no reduction order that depends on timing)."""
    apply_policy(case, monkeypatch)
    p = make_problem(case.spec, *case.shape, case.dtype, lengths=_lengths_for(case, 7),
                     seed=7)
    with fastbptt.threads(threads):
        h1, cache1 = p.forward()
        h2, cache2 = p.forward()
        assert_ran(case, cache1)
        runs = [p.backward(cache) for cache in (cache1, cache2, cache1)]
    np.testing.assert_array_equal(h1, h2)
    for a, b in zip(final_states(case.spec, cache1), final_states(case.spec, cache2)):
        np.testing.assert_array_equal(a, b)
    for other in runs[1:]:
        assert_grads_equal(case.spec, other, runs[0])


# ---------------------------------------------------------------- empty sizes

EMPTY_SHAPES = [(0, 2, 3, 4), (3, 0, 2, 4), (3, 2, 0, 4), (3, 2, 3, 0), (0, 0, 0, 0),
                (0, 1, 1, 1)]


@cells(mode=True)
@layout_param
@dtype_param
@shapes_param(EMPTY_SHAPES)
def test_empty_sizes(spec, mode, shape, dtype, batch_first):
    T, B, I, H = shape
    G = spec.gates
    p = make_problem(spec, *shape, dtype, batch_first=batch_first,
                     upstream=modes(spec)[mode], seed=18)
    h, finals, grads = p.run("compiled")
    h_r, finals_r, grads_r = p.run("reference")
    assert h.shape == ((B, T, H) if batch_first else (T, B, H)) and h.dtype == dtype
    expected_shapes = {"dx": p["x"].shape, "dW_ih": (G * H, I), "dW_hh": (G * H, H),
                       "db_ih": (G * H,), "db_hh": (G * H,),
                       **{f"d{s}": (B, H) for s in spec.initial_states}}
    for name, s in expected_shapes.items():
        assert getattr(grads, name).shape == s, name
        assert getattr(grads, name).dtype == np.dtype(dtype), name
    assert_same_result(h, h_r, shape, dtype)
    for s, a, e in zip(spec.states, finals, finals_r):
        assert a.shape == (B, H) and a.dtype == np.dtype(dtype), s
        assert_same_result(a, e, shape, dtype, s)
    for name in spec.grads._fields:
        assert_same_result(getattr(grads, name), getattr(grads_r, name), shape, dtype, name)
    if T == 0 or B == 0:
        # Nothing flows through any step: the final states are the initial ones, zero
        # gradients, and each final state's gradient passes straight back to its initial
        # state.
        for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
            assert not np.any(getattr(grads, name)), name
        for initial, final, d_final in zip(spec.initial_states, finals, spec.final_grads):
            np.testing.assert_array_equal(final, p[initial])
            np.testing.assert_array_equal(getattr(grads, f"d{initial}"),
                                          p[d_final] if p[d_final] is not None else 0)
    if H == 0:
        assert not np.any(grads.dx)


@cells()
@layout_param
@dtype_param
def test_no_input_features_is_a_zero_input(spec, dtype, batch_first):
    """I = 0 (the kernels run on a zero input column) equals I = 1 with x = 0."""
    T, B, H = 4, 3, 5
    p0 = make_problem(spec, T, B, 0, H, dtype, batch_first=batch_first, seed=19)
    p1 = p0.with_(x=np.zeros(p0["x"].shape[:2] + (1,), dtype),
                  W_ih=np.full((spec.gates * H, 1), 0.7, dtype))
    h_0, f_0, g0 = p0.run("compiled")
    h_1, f_1, g1 = p1.run("compiled")
    rtol, atol = tol_for(dtype)
    assert_close(h_0, h_1, rtol, atol)
    for a, b in zip(f_0, f_1):
        assert_close(a, b, rtol, atol)
    for name in spec.grads._fields:
        if name not in ("dx", "dW_ih"):
            assert_close(getattr(g0, name), getattr(g1, name), rtol, atol, err_msg=name)
    assert g0.dx.shape == p0["x"].shape and g0.dW_ih.shape == (spec.gates * H, 0)


# ---------------------------------------------------------------- variable lengths

def _length_rows():
    return [(c, o, m) for c in LENGTH_CASES for o in option_sets(c.spec) for m in modes(c.spec)]


@_param("case,options,mode", _length_rows(),
        [f"{c.id}-{options_id(o)}-{m}" for c, o, m in _length_rows()])
@layout_param
def test_lengths_match_reference(case, options, mode, batch_first, monkeypatch):
    spec = case.spec
    apply_policy(case, monkeypatch)
    p = make_problem(spec, *case.shape, case.dtype, options=options, batch_first=batch_first,
                     upstream=modes(spec)[mode], lengths=_lengths_for(case, 5), seed=5)
    compare_to_reference(p, case)


@form_param(LENGTH_CASES)
@impl_param
@layout_param
def test_lengths_equal_separate_runs(case, batch_first, impl, monkeypatch):
    """Each sequence alone, T = its length, gives its rows of every result; the shared
    parameters' gradients are the sums over the separate runs."""
    apply_policy(case, monkeypatch)
    spec = case.spec
    lengths = _lengths_for(case, 9)
    p = make_problem(spec, *case.shape, case.dtype, batch_first=batch_first, lengths=lengths,
                     seed=9)
    h, finals, grads = p.run(impl)
    tight = dict(rtol=1e-12, atol=1e-12) if case.dtype == np.float64 else \
        dict(rtol=1e-5, atol=1e-6)
    summed = {name: 0.0 for name in spec.grads._fields if name[:2] in ("dW", "db")}
    for b, n in enumerate(lengths):
        def seq(name):   # sequence b's first n steps, (n, 1, .) time-major
            return p.time_major(name)[:n, b][:, None]
        per_sequence = {s: p[s][b:b + 1] for s in spec.initial_states + spec.final_grads}
        alone = p.with_(x=seq("x"), dh=seq("dh"), batch_first=False, lengths=None,
                        **per_sequence)
        h_b, finals_b, g_b = alone.run(impl)
        h_rows = h[b] if batch_first else h[:, b]
        dx_rows = grads.dx[b] if batch_first else grads.dx[:, b]
        np.testing.assert_allclose(h_rows[:n], h_b[:, 0], **tight)
        assert not np.any(h_rows[n:]), "outputs past a length must be zero"
        for s, a, e in zip(spec.states, finals, finals_b):
            np.testing.assert_allclose(a[b], e[0], **tight, err_msg=f"{s}_n")
        np.testing.assert_allclose(dx_rows[:n], g_b.dx[:, 0], **tight)
        assert not np.any(dx_rows[n:]), "dx past a length must be zero"
        for s in spec.initial_states:
            np.testing.assert_allclose(getattr(grads, f"d{s}")[b], getattr(g_b, f"d{s}")[0],
                                       **tight, err_msg=f"d{s}")
        for name in summed:
            summed[name] = summed[name] + getattr(g_b, name)
    rtol, atol = tol_for(case.dtype)
    for name, value in summed.items():
        assert_close(getattr(grads, name), value, rtol, atol, err_msg=name)


@cells()
@impl_param
@layout_param
def test_length_zero_passes_the_states_and_their_gradients_through(spec, batch_first, impl):
    p = make_problem(spec, 4, 3, 2, 5, np.float64, batch_first=batch_first, lengths=[0, 0, 0],
                     seed=6)
    h, finals, grads = p.run(impl)
    assert not np.any(h)
    for initial, final, d_final in zip(spec.initial_states, finals, spec.final_grads):
        np.testing.assert_array_equal(final, p[initial])
        np.testing.assert_array_equal(getattr(grads, f"d{initial}"), p[d_final])
    for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert not np.any(getattr(grads, name)), name


@cells()
@impl_param
@layout_param
@dtype_param
@_param("shape", [(4, 2, 3, 3), (4, 5, 3, 9), (4, 6, 3, 4)], ["gemv", "transposed", "plain"])
def test_lengths_ignore_dh_past_the_end(spec, shape, dtype, batch_first, impl):
    """dh at padded steps is ignored, even when it is not finite."""
    lengths = np.full(shape[1], shape[0])
    lengths[0] = 2
    p = make_problem(spec, *shape, dtype, batch_first=batch_first, lengths=lengths, seed=4)
    pad = (0, slice(2, None)) if batch_first else (slice(2, None), 0)
    dh, clean = p["dh"].copy(), p["dh"].copy()
    dh[pad] = np.nan
    clean[pad] = 0
    _, _, grads = p.with_(dh=dh).run(impl)
    _, _, expected = p.with_(dh=clean).run(impl)
    assert_grads_equal(spec, grads, expected)


@cells()
@impl_param
@layout_param
def test_final_states_without_lengths(spec, batch_first, impl):
    """h_n is the last step of h; every final state is a fresh (B, H) array each time it
    is read, and the cache's attributes cannot be set."""
    p = make_problem(spec, 5, 3, 2, 4, np.float64, batch_first=batch_first)
    h, cache = p.forward(impl)
    finals = final_states(spec, cache)
    np.testing.assert_array_equal(finals[0], h[:, -1] if batch_first else h[-1])
    for s, f in zip(spec.states, finals):
        assert f.shape == (3, 4) and f.flags.c_contiguous, s
        f[:] = 7
    for s, f in zip(spec.states, final_states(spec, cache)):
        assert not np.any(f == 7), f"{s}_n is not a fresh array"
        with pytest.raises(AttributeError):
            setattr(cache, f"{s}_n", f)


@cells()
@impl_param
@_param("lengths,exc,needle", [c[1:] for c in BAD_LENGTHS], [c[0] for c in BAD_LENGTHS])
def test_bad_lengths(spec, lengths, exc, needle, impl):
    p = make_problem(spec, 5, 3, 2, 4, np.float64).with_(lengths=lengths)   # as given
    with pytest.raises(exc, match=needle):
        p.forward(impl)


# ---------------------------------------------------------------- bad input

# A valid problem: T = 3 != B = 2, so a layout mix-up changes the expected shapes.
T_, B_, I_, H_ = 3, 2, 4, 5
f32 = np.float32


def _valid(spec, batch_first=False):
    return make_problem(spec, T_, B_, I_, H_, np.float64, batch_first=batch_first, seed=20)


def forward_errors(spec):
    """(id, changes to the valid problem, exception, regexes the message must match),
    for every argument of the spec's forward: its rank, its shape against the others,
    its dtype, its options, and the same checks on an empty problem."""
    G, GH, rows = spec.gates, spec.gates * H_, gate_rows(spec)
    R = rows.replace("*", r"\*")
    errors = [
        ("x_2d", dict(x=np.ones((T_, I_))), ValueError, ["x", "3-D"]),
        ("x_4d", dict(x=np.ones((T_, B_, I_, 1))), ValueError, ["x", "3-D"]),
        ("x_scalar", dict(x=1.0), ValueError, ["x", "3-D"]),
        ("W_ih_3d", dict(W_ih=np.ones((1, GH, I_))), ValueError, ["W_ih", "2-D"]),
        ("W_ih_1d", dict(W_ih=np.ones(GH)), ValueError, ["W_ih", "2-D"]),
        ("W_hh_1d", dict(W_hh=np.ones(GH)), ValueError, ["W_hh", "2-D"]),
        ("W_hh_3d", dict(W_hh=np.ones((1, GH, H_))), ValueError, ["W_hh", "2-D"]),
        ("b_ih_2d", dict(b_ih=np.ones((1, GH))), ValueError, ["b_ih", "1-D"]),
        ("b_hh_0d", dict(b_hh=np.float64(1.0)), ValueError, ["b_hh", "1-D"]),
        ("W_ih_wrong_I", dict(W_ih=np.ones((GH, I_ + 1))), ValueError,
         ["W_ih", rf"\({R}, I\)"]),
        ("W_ih_wrong_H", dict(W_ih=np.ones((GH + 1, I_))), ValueError,
         ["W_ih", rf"\({R}, I\)"]),
        ("W_hh_wide", dict(W_hh=np.ones((GH, H_ + 1))), ValueError, ["W_hh", rf"\({R}, H\)"]),
        ("W_hh_tall", dict(W_hh=np.ones((GH + 1, H_))), ValueError, ["W_hh", rf"\({R}, H\)"]),
        ("W_hh_one_more_gate", dict(W_hh=np.ones(((G + 1) * H_, H_))), ValueError,
         ["W_hh", rf"\({R}, H\)"]),
        ("b_ih_long", dict(b_ih=np.ones(GH + 1)), ValueError, ["b_ih", rf"\({R},\)"]),
        ("b_hh_short", dict(b_hh=np.ones(GH - 1)), ValueError, ["b_hh", rf"\({R},\)"]),
        ("x_time_major_with_batch_first", dict(batch_first=True), ValueError,
         [spec.initial_states[0], r"\(B, H\)"]),
        ("x_f32", dict(x=np.ones((T_, B_, I_), f32)), TypeError, ["W_hh", r"\bx\b", "float32"]),
        ("x_int", dict(x=np.ones((T_, B_, I_), np.int64)), TypeError,
         ["x", "float32 or float64"]),
        ("x_bool", dict(x=np.ones((T_, B_, I_), bool)), TypeError, ["x", "bool"]),
        ("x_complex", dict(x=np.ones((T_, B_, I_), complex)), TypeError, ["x", "complex"]),
        ("x_float16", dict(x=np.ones((T_, B_, I_), np.float16)), TypeError, ["x", "float16"]),
        ("x_object", dict(x=np.ones((T_, B_, I_), object)), TypeError, ["x", "object"]),
        ("x_ragged_list", dict(x=[[[1.0]], [[1.0, 2.0]]]), TypeError, ["x"]),
        ("x_string", dict(x="abc"), TypeError, ["x"]),
        ("W_hh_int", dict(W_hh=np.ones((GH, H_), np.int32)), TypeError, ["W_hh", "int32"]),
        ("W_ih_complex", dict(W_ih=np.ones((GH, I_), complex)), TypeError,
         ["W_ih", "complex"]),
        ("b_ih_object", dict(b_ih=np.ones(GH, object)), TypeError, ["b_ih", "object"]),
        ("b_hh_int", dict(b_hh=np.ones(GH, np.int64)), TypeError, ["b_hh", "int64"]),
        ("only_b_ih", dict(b_hh=None), ValueError, ["b_ih", "b_hh"]),
        ("only_b_hh", dict(b_ih=None), ValueError, ["b_ih", "b_hh"]),
        ("batch_first_int", dict(batch_first=1), TypeError, ["batch_first"]),
        ("batch_first_zero", dict(batch_first=0), TypeError, ["batch_first"]),
        ("batch_first_str", dict(batch_first="True"), TypeError, ["batch_first"]),
        ("batch_first_None", dict(batch_first=None), TypeError, ["batch_first"]),
        # validated even when the problem is empty (the empty path is not a way around
        # the checks)
        ("empty_T_W_ih_wrong", dict(x=np.ones((0, B_, I_)), W_ih=np.ones((GH, I_ + 1))),
         ValueError, ["W_ih"]),
        ("empty_T_f32_W_hh", dict(x=np.ones((0, B_, I_)), W_hh=np.ones((GH, H_), f32)),
         TypeError, ["W_hh", r"\bx\b"]),
    ]
    for name in ("W_ih", "W_hh", "b_ih", "b_hh"):
        shape = (GH,) if name.startswith("b") else (GH, I_ if name == "W_ih" else H_)
        errors.append((f"{name}_f32", {name: np.ones(shape, f32)}, TypeError,
                       [name, r"\bx\b", "float32"]))
    if G > 1:
        errors += [
            ("W_ih_one_gate", dict(W_ih=np.ones((H_, I_))), ValueError,
             ["W_ih", rf"\({R}, I\)"]),
            ("W_hh_one_gate", dict(W_hh=np.ones((H_, H_))), ValueError,
             ["W_hh", rf"\({R}, H\)"]),
            ("b_ih_one_gate", dict(b_ih=np.ones(H_)), ValueError, ["b_ih", rf"\({R},\)"]),
        ]
    for s in spec.initial_states:
        errors += [
            (f"{s}_3d", {s: np.ones((1, B_, H_))}, ValueError, [s, "2-D"]),
            (f"{s}_1d", {s: np.ones(H_)}, ValueError, [s, "2-D"]),
            (f"{s}_wrong_B", {s: np.ones((B_ + 1, H_))}, ValueError, [s, r"\(B, H\)"]),
            (f"{s}_wrong_H", {s: np.ones((B_, H_ + 1))}, ValueError, [s, r"\(B, H\)"]),
            (f"{s}_transposed", {s: np.ones((H_, B_))}, ValueError, [s, r"\(B, H\)"]),
            (f"{s}_f32", {s: np.ones((B_, H_), f32)}, TypeError, [s, r"\bx\b", "float32"]),
            (f"{s}_bool", {s: np.ones((B_, H_), bool)}, TypeError, [s, "bool"]),
            (f"{s}_complex", {s: np.ones((B_, H_), complex)}, TypeError, [s, "complex"]),
            (f"empty_T_{s}_wrong", {"x": np.ones((0, B_, I_)), s: np.ones((B_ + 1, H_))},
             ValueError, [s]),
        ]
    for option in spec.options:
        errors += [(f"{option}_{label}", {option: value}, exc, needles)
                   for label, value, exc, needles in OPTION_ERRORS[option]]
    return errors


def backward_errors(spec):
    """(id, batch_first of the forward pass, upstream gradients, exception, regexes):
    every upstream gradient's rank, shape, layout and dtype."""
    errors = [
        ("all_None", False, {}, ValueError, list(upstream_names(spec))),
        ("dh_2d", False, dict(dh=np.ones((T_ * B_, H_))), ValueError, ["dh", "3-D"]),
        ("dh_4d", False, dict(dh=np.ones((T_, B_, H_, 1))), ValueError, ["dh", "3-D"]),
        ("dh_wrong_T", False, dict(dh=np.ones((T_ + 1, B_, H_))), ValueError,
         ["dh", r"\(T, B, H\)"]),
        ("dh_wrong_H", False, dict(dh=np.ones((T_, B_, H_ + 1))), ValueError,
         ["dh", r"\(T, B, H\)"]),
        # G*H columns, like a gate buffer (2*H for a one-gate cell, where G*H is H)
        ("dh_gate_sized", False, dict(dh=np.ones((T_, B_, max(spec.gates, 2) * H_))),
         ValueError, ["dh", r"\(T, B, H\)"]),
        ("dh_batch_first_given_time_major", True, dict(dh=np.ones((T_, B_, H_))), ValueError,
         ["dh", r"\(B, T, H\)"]),
        ("dh_time_major_given_batch_first", False, dict(dh=np.ones((B_, T_, H_))), ValueError,
         ["dh", r"\(T, B, H\)"]),
        ("dh_f32", False, dict(dh=np.ones((T_, B_, H_), f32)), TypeError,
         ["dh", r"\bx\b", "float32"]),
        ("dh_int", False, dict(dh=np.ones((T_, B_, H_), int)), TypeError,
         ["dh", "float32 or float64"]),
        ("dh_complex", False, dict(dh=np.ones((T_, B_, H_), complex)), TypeError,
         ["dh", "complex"]),
        ("dh_object", False, dict(dh=np.ones((T_, B_, H_), object)), TypeError,
         ["dh", "object"]),
    ]
    for g in spec.final_grads:
        errors += [
            (f"{g}_3d", False, {g: np.ones((1, B_, H_))}, ValueError, [g, "2-D"]),
            (f"{g}_1d", False, {g: np.ones(H_)}, ValueError, [g, "2-D"]),
            (f"{g}_wrong_B", False, {"dh": np.ones((T_, B_, H_)), g: np.ones((B_ + 1, H_))},
             ValueError, [g, r"\(B, H\)"]),
            (f"{g}_wrong_H", False, {g: np.ones((B_, H_ - 1))}, ValueError, [g, r"\(B, H\)"]),
            (f"{g}_f32", False, {g: np.ones((B_, H_), f32)}, TypeError,
             [g, r"\bx\b", "float32"]),
            (f"{g}_int", False, {g: np.ones((B_, H_), int)}, TypeError,
             [g, "float32 or float64"]),
            (f"{g}_bool", False, {g: np.ones((B_, H_), bool)}, TypeError, [g, "bool"]),
        ]
    return errors


def _error_rows(make):
    rows = [(spec, *e[1:]) for spec in SPEC_LIST for e in make(spec)]
    ids = [f"{spec.name}-{e[0]}" for spec in SPEC_LIST for e in make(spec)]
    return rows, ids


_FORWARD_ERRORS = _error_rows(forward_errors)
_BACKWARD_ERRORS = _error_rows(backward_errors)


@_param("spec,changes,exc,needles", *_FORWARD_ERRORS)
@impl_param
def test_forward_rejects_bad_input(spec, changes, exc, needles, impl):
    p = _valid(spec).with_(**changes)
    raises_naming(exc, needles, lambda: p.forward(impl))


@_param("spec,batch_first,upstream,exc,needles", *_BACKWARD_ERRORS)
@impl_param
def test_backward_rejects_bad_input(spec, batch_first, upstream, exc, needles, impl):
    p = _valid(spec, batch_first)
    _, cache = p.forward(impl)
    _, backward = functions(spec, impl)
    up = {n: upstream.get(n) for n in upstream_names(spec)}
    raises_naming(exc, needles, lambda: backward(up.pop("dh"), cache, **up))


@cells()
@_param("shape", [(T_, B_, I_, H_), (0, B_, I_, H_)], ["full", "empty"])
def test_reference_cache_goes_to_reference_backward(spec, shape):
    # The backend switch (fastbptt.runtime.backend): a backward follows its cache's maker.
    p = make_problem(spec, *shape, seed=21)
    _, cache = p.forward("reference")
    got = p.backward(cache, "compiled")
    want = p.backward(cache, "reference")
    assert_grads_equal(spec, got, want, "reference cache")


@cells()
@_param("shape", [(T_, B_, I_, H_), (0, B_, I_, H_)], ["full", "empty"])
def test_compiled_cache_rejected_by_reference_backward(spec, shape):
    p = make_problem(spec, *shape, seed=21)
    _, cache = p.forward("compiled")
    with pytest.raises(TypeError, match="cache"):
        p.backward(cache, "reference")


@cells()
@impl_param
@_param("cache", [None, {}, (1, 2), "cache", np.ones(3)],
        ["None", "dict", "tuple", "str", "ndarray"])
def test_backward_rejects_non_cache(spec, cache, impl):
    _, backward = functions(spec, impl)
    with pytest.raises(TypeError, match="cache"):
        backward(np.ones((T_, B_, H_)), cache)


_PAIRS = [(a, b) for a in SPEC_LIST for b in SPEC_LIST if a is not b]


@_param("spec,other", _PAIRS, [f"{a.name}-given-{b.name}" for a, b in _PAIRS])
@impl_param
def test_another_cells_cache_is_rejected(spec, other, impl):
    _, cache = make_problem(other, T_, B_, I_, H_, seed=21).forward(impl)
    _, backward = functions(spec, impl)
    with pytest.raises(TypeError, match="cache"):
        backward(np.ones((T_, B_, H_)), cache)


# ---------------------------------------------------------------- torch.nn

def _torch_module(torch, spec, p, bias):
    """torch.nn.<spec.torch_name> with p's parameters (PyTorch's layout and gate order)."""
    T, B, I, H = p.shape
    module = getattr(torch.nn, spec.torch_name)(
        I, H, num_layers=1, bias=bias, batch_first=p.batch_first,
        dtype=torch.float64 if p.dtype == np.float64 else torch.float32, **p.options)
    with torch.no_grad():
        for ours, theirs in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"),
                             ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            if bias or ours.startswith("W"):
                getattr(module, theirs).copy_(torch.from_numpy(p[ours]))
    return module


def check_against_torch(torch, case, p, bias):
    """Run p through torch.nn (packed when p has lengths) and through the compiled cell:
    outputs, final states and every gradient agree, in p's dtype."""
    spec = case.spec
    module = _torch_module(torch, spec, p, bias)
    x = torch.from_numpy(p["x"].copy()).requires_grad_()
    initial = [torch.from_numpy(p[s].copy()[None]).requires_grad_()
               for s in spec.initial_states]
    # torch takes one state as a tensor, several (the LSTM's h and c) as a tuple
    hx = initial[0] if len(initial) == 1 else tuple(initial)
    if p.lengths is None:
        out, finals = module(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.from_numpy(p.lengths), batch_first=p.batch_first, enforce_sorted=False)
        out_packed, finals = module(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=p.batch_first,
                                                        total_length=p.shape[0])
    finals = (finals,) if torch.is_tensor(finals) else tuple(finals)
    loss = (out * torch.from_numpy(p["dh"])).sum()
    for final, g in zip(finals, spec.final_grads):
        loss = loss + (final[0] * torch.from_numpy(p[g])).sum()
    loss.backward()

    h, cache = p.forward("compiled")
    assert_ran(case, cache)
    ours_finals, grads = final_states(spec, cache), p.backward(cache)
    rtol = 1e-9 if p.dtype == np.float64 else 1e-4
    atol = rtol if p.dtype == np.float64 else 1e-5
    assert_close(h, out.detach().numpy(), rtol, atol, err_msg="h")
    for s, a, e in zip(spec.states, ours_finals, finals):
        assert_close(a, e[0].detach().numpy(), rtol, atol, err_msg=f"{s}_n")
    expected = {"dx": x.grad, "dW_ih": module.weight_ih_l0.grad,
                "dW_hh": module.weight_hh_l0.grad,
                **{f"d{s}": t.grad[0] for s, t in zip(spec.initial_states, initial)}}
    if bias:
        expected.update(db_ih=module.bias_ih_l0.grad, db_hh=module.bias_hh_l0.grad)
    else:
        assert grads.db_ih is None and grads.db_hh is None
    assert set(expected) == set(spec.grads._fields) - (set() if bias else {"db_ih", "db_hh"})
    for name, value in expected.items():
        got = getattr(grads, name)
        assert got.dtype == p.dtype
        assert_close(got, value.numpy(), rtol, atol, err_msg=name)


def _torch_rows():
    return [(c, o) for c in TORCH_CASES for o in option_sets(c.spec, TORCH_OPTION_VALUES)]


@_param("case,options", _torch_rows(), [f"{c.id}-{options_id(o)}" for c, o in _torch_rows()])
@bias_param
@layout_param
def test_matches_torch(case, options, batch_first, bias, monkeypatch):
    torch = pytest.importorskip("torch")
    apply_policy(case, monkeypatch)
    p = make_problem(case.spec, *case.shape, case.dtype, options=options,
                     batch_first=batch_first, bias=bias, seed=22)
    check_against_torch(torch, case, p, bias)


@form_param(TORCH_CASES)
@layout_param
def test_lengths_match_torch_packed_sequence(case, batch_first, monkeypatch):
    """(pack_padded_sequence refuses length 0: that case is held to separate runs.)"""
    torch = pytest.importorskip("torch")
    apply_policy(case, monkeypatch)
    lengths = np.maximum(_lengths_for(case, 31), 1)
    p = make_problem(case.spec, *case.shape, case.dtype, batch_first=batch_first,
                     lengths=lengths, seed=31)
    check_against_torch(torch, case, p, True)


# ---------------------------------------------------------------- the forced policy

@cells()
@_param("mode", ["many_to_many", "all"], ["many_to_many", "all"])
@layout_param
@shapes_param([(13, 5, 1, 9), (4, 9, 3, 19), (3, 16, 5, 24)])
def test_transposed_step_in_float64(spec, shape, batch_first, mode, monkeypatch):
    """The transposed per-step product forced in float64 (where a spec's policy may not
    choose it) agrees with the reference to float64 tolerances."""
    force_transposed(monkeypatch)
    p = make_problem(spec, *shape, np.float64, batch_first=batch_first,
                     upstream=modes(spec)[mode], seed=2)
    h, cache = p.forward()
    assert cache.form == "transposed"
    compare_to_reference(p)
