"""Bad input across every registered function (tests/_registry.py), compiled and
reference: junk types and dtypes are TypeErrors naming the argument, sizes BLAS's 32-bit
ints cannot index are ValueErrors raised before anything is allocated, every array layout
(Fortran, strided, negative strides, read-only) gives bit-identical results to the
C-contiguous one, and the caller's arrays are never written.

The per-cell files (test_rnn.py, test_lstm.py, test_gru.py, test_layers.py) test wrong
shapes, ndims, mixed dtypes and lengths argument by argument; this file covers what the
registry lets us test for all functions at once.
"""
import inspect
import re

import numpy as np
import pytest

import fastbptt
import fastbptt.runtime.validation as validation
from _registry import LAYOUTS, REGISTRY, Case, flatten
from fastbptt import reference
from fastbptt.cells.spec import CELLS, SPECS

CELL_FORWARDS = [e for e in REGISTRY if e.name in {s.forward_name for s in SPECS.values()}]
IMPL_MODULES = {"compiled": fastbptt, "reference": reference}


def _forward_call(cell, impl, x, W_ih, W_hh):
    """The cell's forward function in impl and its positional arguments, every initial
    state None (zeros)."""
    spec = SPECS[cell]
    forward = getattr(IMPL_MODULES[impl], spec.forward_name)
    return forward, (x, *(None,) * len(spec.states), W_ih, W_hh)


def _array_params(call):
    """(index, name) of the positional array arguments of a cell function's call."""
    names = list(inspect.signature(call.fn).parameters)
    return [(i, names[i]) for i, a in enumerate(call.args) if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("entry", CELL_FORWARDS, ids=lambda e: e.name)
@pytest.mark.parametrize("kind", ["int64", "bool", "complex128", "object", "float16",
                                  "bigendian"])
def test_non_float_arrays_are_type_errors_naming_the_argument(entry, impl, kind):
    call = entry.build(Case(T=3, B=2, I=3, H=2, dtype=np.float64), impl)
    for i, name in _array_params(call):
        a = call.args[i]
        bad = (a.astype(a.dtype.newbyteorder(">")) if kind == "bigendian"
               else a.astype(kind))
        args = list(call.args)
        args[i] = bad
        with pytest.raises(TypeError, match=re.escape(name)) as info:
            call.fn(*args, **call.kwargs)
        if kind == "bigendian":
            assert "byte order" in str(info.value)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("entry", CELL_FORWARDS, ids=lambda e: e.name)
def test_mixed_dtypes_name_the_argument_and_x(entry, impl):
    call = entry.build(Case(T=3, B=2, I=3, H=2, dtype=np.float32), impl)
    for i, name in _array_params(call)[1:]:
        args = list(call.args)
        args[i] = args[i].astype(np.float64)
        with pytest.raises(TypeError, match=rf"mixed dtypes: {name} is float64 but the "
                                            r"sequence x is float32"):
            call.fn(*args, **call.kwargs)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("entry", CELL_FORWARDS, ids=lambda e: e.name)
@pytest.mark.parametrize("lengths,exc,needle", [
    (np.array([1, 2**40], np.uint64), ValueError, r"lengths must lie in \[0, T\]"),
    (np.array([1, 2], object), TypeError, r"lengths must have an integer dtype"),
    (np.array([1.5, 2.0]), TypeError, r"lengths must have an integer dtype"),
    (np.array([1, 2], np.complex64), TypeError, r"lengths must have an integer dtype"),
    (np.array([-2**62, 2], np.int64), ValueError, r"lengths must lie in \[0, T\]"),
    (2, ValueError, r"lengths must have shape \(B,\)"),
])
def test_lengths_out_of_range_or_of_the_wrong_dtype(entry, impl, lengths, exc, needle):
    call = entry.build(Case(T=3, B=2, I=3, H=2), impl)
    with pytest.raises(exc, match=needle):
        call.fn(*call.args, **{**call.kwargs, "lengths": lengths})


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_sizes_beyond_32_bit_blas_are_refused_before_allocating(cell, impl, batch_first):
    """T*B = 2**32 from a zero-stride view of 4 bytes: a copy would need 16 GiB, so a
    ValueError (not a MemoryError, not a long stall) shows the check ran first."""
    G = SPECS[cell].gates
    T, B, I, H = 2**16, 2**16, 1, 2
    x = np.broadcast_to(np.float32(0), (B, T, I) if batch_first else (T, B, I))
    W_ih, W_hh = np.zeros((G * H, I), np.float32), np.zeros((G * H, H), np.float32)
    forward, args = _forward_call(cell, impl, x, W_ih, W_hh)
    with pytest.raises(ValueError, match=r"T\*B\*I = 4294967296 exceeds the 32-bit BLAS"):
        forward(*args, batch_first=batch_first)


# G' = spec.work_gates, the columns / H of the kernels' gate workspace
PRODUCTS = {"T*B*I": lambda T, B, I, H, G, Gw: T * B * I,
            "T*B*G'*H": lambda T, B, I, H, G, Gw: T * B * Gw * H,
            "G*H*H": lambda T, B, I, H, G, Gw: G * H * H,
            "G*H*I": lambda T, B, I, H, G, Gw: G * H * I}


@pytest.mark.parametrize("cell,product,shape", [
    ("rnn", "T*B*I", (6, 5, 40, 2)), ("rnn", "T*B*G'*H", (6, 5, 2, 10)),
    ("rnn", "G*H*H", (1, 1, 1, 20)), ("rnn", "G*H*I", (1, 1, 30, 5)),
    ("lstm", "T*B*G'*H", (6, 5, 2, 3)), ("lstm", "G*H*I", (1, 1, 30, 3)),
    ("gru", "T*B*G'*H", (6, 5, 2, 3)), ("gru", "G*H*H", (1, 1, 2, 10)),
    ("gru", "G*H*I", (1, 1, 30, 5)),
])
@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_each_product_is_checked_and_named(monkeypatch, cell, product, shape, impl):
    """With the limit lowered to just below one product (computed in Python ints) of a
    shape where it is the largest, that product is the one named: every buffer the
    kernels index is covered (G' = 4 for the GRU's gate workspace)."""
    T, B, I, H = shape
    G, Gw = SPECS[cell].gates, SPECS[cell].work_gates
    value = PRODUCTS[product](T, B, I, H, G, Gw)
    assert value == max(f(T, B, I, H, G, Gw) for f in PRODUCTS.values())
    monkeypatch.setattr(validation, "_BLAS_INT_MAX", value - 1)
    label = (product.replace("G'", str(Gw)).replace("G", str(G)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    W_ih, W_hh = rng.standard_normal((G * H, I)), rng.standard_normal((G * H, H))
    forward, args = _forward_call(cell, impl, x, W_ih, W_hh)
    with pytest.raises(ValueError, match=re.escape(f"{label} = {value} exceeds the 32-bit")):
        forward(*args)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_layer_refuses_huge_sequences_before_allocating(cls):
    layer = getattr(fastbptt, cls)(1, 2)
    x = np.broadcast_to(np.float32(0), (2**16, 2**16, 1))
    with pytest.raises(ValueError, match="exceeds the 32-bit BLAS index limit"):
        layer.forward(x)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
def test_huge_upstream_gradients_are_refused_by_shape_without_a_copy(cell, impl):
    entry = next(e for e in REGISTRY if e.name == f"{cell}_backward")
    call = entry.build(Case(T=3, B=2, I=3, H=2), impl)
    huge = np.broadcast_to(np.float64(0), (2**31 + 5, 2, 2))
    with pytest.raises(ValueError, match=r"dh must have shape"):
        call.fn(huge, *call.args[1:], **call.kwargs)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
@pytest.mark.parametrize("layout", [lay for lay in LAYOUTS if lay != "C"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
def test_every_layout_gives_the_contiguous_result_bit_for_bit(entry, impl, layout, dtype,
                                                              batch_first):
    """Fortran order, strided slices, negative strides and read-only arrays hold the same
    values as the C-contiguous arrays, so the results must be identical, not just close.
    Lengths on, so the padding paths run too."""
    case = Case(T=5, B=3, I=4, H=3, dtype=dtype, batch_first=batch_first, lengths=True,
                seed=7)
    expected = flatten(entry.build(case, impl)())
    got = flatten(entry.build(Case(**{**case.__dict__, "layout": layout}), impl)())
    assert len(got) == len(expected) > 0
    for a, e in zip(got, expected):
        assert a.dtype == e.dtype
        np.testing.assert_array_equal(a, e)


def _all_arrays(call):
    return [a for a in list(call.args) + list(call.kwargs.values())
            if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
@pytest.mark.parametrize("batch_first", [False, True])
def test_caller_arrays_are_never_written(entry, impl, batch_first):
    """Read-only inputs are accepted (a write would raise), and writable ones keep their
    bytes: both through one call and through the returned results being modified."""
    for layout in ("readonly", "C"):
        case = Case(T=4, B=3, I=2, H=3, batch_first=batch_first, lengths=True,
                    layout=layout, seed=3)
        call = entry.build(case, impl)
        before = [a.copy() for a in _all_arrays(call)]
        result = call()
        for a in flatten(result):
            if a.flags.writeable:
                a[...] = 12345.0   # results are the caller's: editing them is fine
        for a, b in zip(_all_arrays(call), before):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch_with_a_huge_T_is_immediate_and_a_T_beyond_int32_refused(cell, impl):
    """B = 0 makes every result empty whatever T is: no loop over 2**30 empty steps
    (found by tools/fuzz.py, where it ran for minutes). T itself must fit a C int."""
    G = SPECS[cell].gates
    W_ih, W_hh = np.ones((G * 3, 2)), np.ones((G * 3, 3))
    backward = getattr(IMPL_MODULES[impl], SPECS[cell].backward_name)
    x = np.broadcast_to(np.float64(0), (2**30, 0, 2))
    forward, args = _forward_call(cell, impl, x, W_ih, W_hh)
    h, cache = forward(*args)
    assert h.shape == (2**30, 0, 3)
    grads = backward(None, cache, dh_n=np.zeros((0, 3)))
    assert grads.dx.shape == x.shape and not grads.dW_ih.any()
    with pytest.raises(ValueError, match=r"T = 2147483653 exceeds the 32-bit BLAS"):
        forward(*_forward_call(cell, impl, np.broadcast_to(np.float64(0), (2**31 + 5, 0, 2)),
                               W_ih, W_hh)[1])


@pytest.mark.parametrize("impl", ["compiled", "reference"])
@pytest.mark.parametrize("cell", CELLS)
def test_a_huge_batch_without_features_is_refused_before_the_zero_states(cell, impl):
    """I = 0 makes x empty whatever B is, but h0 = None would be zeros (B, H): B = 2**40
    must be refused before those are allocated, not with a MemoryError."""
    G = SPECS[cell].gates
    x = np.broadcast_to(np.float64(0), (1, 2**40, 0))
    W_ih, W_hh = np.ones((G * 3, 0)), np.ones((G * 3, 3))
    forward, args = _forward_call(cell, impl, x, W_ih, W_hh)
    with pytest.raises(ValueError, match=r"B = 1099511627776 exceeds the 32-bit BLAS"):
        forward(*args)
