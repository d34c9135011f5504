"""The public functions under the reliability harnesses, one REGISTRY entry each.

The property tests (test_properties.py), the fuzz driver (tools/fuzz.py and its small run
in test_fuzz.py), the leak check (test_leaks.py, tools/leakcheck.py) and the concurrency
tests (test_concurrency.py) all walk REGISTRY, so a new public function joins every one
of them with one Entry: a name and a `build(case, impl)` that returns a ready Call (the
callable and valid arguments for that random Case and implementation).

    REGISTRY.append(Entry("softmax_cross_entropy", build_softmax_cross_entropy))

A builder draws its arrays from case.rng(), presents them in case.layout (present()),
and may ignore the Case fields it has no use for. Backward entries run their own
implementation's forward inside build, so the cache matches.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

import numpy as np

import fastbptt
from fastbptt import reference
from fastbptt.cells.spec import SPECS
from fastbptt.nn.stepper import Stepper

IMPLS = ("compiled", "reference")

# How an array argument is handed over: the same values as a C-contiguous array, but as
# a Fortran-ordered copy, a strided slice of a larger array, a negative-stride view, or a
# read-only array. Every layout must give bit-identical results to "C".
LAYOUTS = ("C", "F", "strided", "reversed", "readonly")

NONLINEARITIES = ("tanh", "relu", "sigmoid", "identity")


@dataclass(frozen=True)
class Case:
    """One random problem; every builder reads the fields it needs."""
    T: int = 4
    B: int = 2
    I: int = 3
    H: int = 5
    dtype: Any = np.float64
    batch_first: bool = False
    layout: str = "C"
    lengths: bool = False
    nonlinearity: str = "tanh"
    bias: bool = True
    seed: int = 0

    def rng(self):
        return np.random.default_rng(self.seed)


@dataclass
class Call:
    """A ready call: fn(*args, **kwargs)."""
    fn: Callable
    args: Tuple
    kwargs: Dict[str, Any] = field(default_factory=dict)

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Entry:
    """A public function under test: build(case, impl) -> Call for impl in `impls`.

    `exceptions` are the documented exceptions for bad arguments; anything else raised
    by a call with junk arguments is a failure. `scale` widens the per-dtype tolerance of
    compiled against reference (long products of rounding errors, say)."""
    name: str
    build: Callable[[Case, str], Call]
    impls: Tuple[str, ...] = IMPLS
    exceptions: Tuple[type, ...] = (TypeError, ValueError)
    scale: float = 1.0


def present(a, layout):
    """The values of array `a` (C-contiguous, not shared with anything) in `layout`."""
    if a is None or layout == "C":
        return a
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],) if a.ndim else (), a.dtype)
        if not a.ndim:
            return a
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    raise ValueError(f"unknown layout {layout!r}")


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _cell_arrays(case, G):
    """Random, well-conditioned forward arguments of a G-gate cell, C-contiguous."""
    rng = case.rng()
    T, B, I, H, dt = case.T, case.B, case.I, case.H, case.dtype
    x = _rand(rng, (B, T, I) if case.batch_first else (T, B, I), dt)
    arrays = {
        "x": x,
        "h0": _rand(rng, (B, H), dt, 0.5),
        "c0": _rand(rng, (B, H), dt, 0.5),
        "W_ih": _rand(rng, (G * H, I), dt, 1.0 / np.sqrt(max(I, 1))),
        "W_hh": _rand(rng, (G * H, H), dt, 0.6 / np.sqrt(max(H, 1))),
        "b_ih": _rand(rng, (G * H,), dt, 0.3) if case.bias else None,
        "b_hh": _rand(rng, (G * H,), dt, 0.3) if case.bias else None,
    }
    lengths = rng.integers(0, T + 1, size=B) if case.lengths else None
    out_shape = (B, T, H) if case.batch_first else (T, B, H)
    upstream = {"dh": _rand(rng, out_shape, dt), "dh_n": _rand(rng, (B, H), dt),
                "dc_n": _rand(rng, (B, H), dt)}
    return arrays, lengths, upstream


def spec_arrays(spec, case):
    """_cell_arrays for one cell: (its forward arrays by argument name, lengths, its
    upstream gradients by name), without the states the cell does not have."""
    a, lengths, upstream = _cell_arrays(case, spec.gates)
    arguments = ("x", *spec.initial_states, "W_ih", "W_hh", "b_ih", "b_hh")
    return ({k: a[k] for k in arguments}, lengths,
            {k: upstream[k] for k in ("dh",) + spec.final_grads})


def _module(impl):
    return fastbptt if impl == "compiled" else reference


def _forward_call(cell, case, impl):
    spec = SPECS[cell]
    a, lengths, upstream = spec_arrays(spec, case)
    fn = getattr(_module(impl), spec.forward_name)
    args = tuple(present(v, case.layout) for v in a.values())
    kwargs = {"batch_first": case.batch_first, "lengths": lengths,
              **{option: getattr(case, option) for option in spec.options}}
    return Call(fn, args, kwargs), upstream


def _backward_call(cell, case, impl):
    spec = SPECS[cell]
    fwd, upstream = _forward_call(cell, case, impl)
    _, cache = fwd()
    u = {k: present(v, case.layout) for k, v in upstream.items()}
    fn = getattr(_module(impl), spec.backward_name)
    return Call(fn, (u["dh"], cache), {g: u[g] for g in spec.final_grads})


# the option values a torch-named layer takes (torch.nn.RNN has tanh and relu only)
_LAYER_OPTION = {"nonlinearity": lambda case: "relu" if case.nonlinearity == "relu"
                 else "tanh"}


def _layer_call(cell, case, impl, backward=False, projected=False):
    """A one-layer, bidirectional-when-seed-is-odd layer over the case's sequence;
    projected: an LSTM with proj_size (_projected_sizes)."""
    spec = SPECS[cell]
    cls = getattr(fastbptt, spec.torch_name)
    kw = {option: _LAYER_OPTION[option](case) for option in spec.options}
    # the layers need sizes >= 1; an empty case is carried by its sequence (T or B = 0)
    I, H = max(case.I, 1), max(case.H, 1)
    if projected:
        H, kw["proj_size"] = _projected_sizes(case)
    layer = cls(I, H, num_layers=1 + case.seed % 2, bias=case.bias,
                batch_first=case.batch_first, bidirectional=bool(case.seed % 3 == 0),
                dtype=case.dtype, seed=case.seed, backend=impl, **kw)
    rng = case.rng()
    x = _rand(rng, (case.B, case.T, I) if case.batch_first else (case.T, case.B, I),
              case.dtype)
    lengths = rng.integers(0, case.T + 1, size=case.B) if case.lengths else None
    fwd = Call(layer.forward, (present(x, case.layout),), {"lengths": lengths})
    if not backward:
        return fwd
    out, _ = fwd()
    return Call(layer.backward, (present(_rand(rng, out.shape, case.dtype), case.layout),))


def _cell_class_call(cell, case, impl, backward=False):
    """One step of a Cell class: x_t (B, I), or unbatched (I,) when seed % 4 == 1; hx
    given on odd seeds; backward runs its own forward for the cache."""
    spec = SPECS[cell]
    cls = getattr(fastbptt, f"{spec.torch_name}Cell")
    kw = {option: _LAYER_OPTION[option](case) for option in spec.options}
    I, H = max(case.I, 1), max(case.H, 1)
    cell = cls(I, H, bias=case.bias, dtype=case.dtype, seed=case.seed, backend=impl, **kw)
    rng = case.rng()
    lead = () if case.seed % 4 == 1 else (case.B,)
    x_t = _rand(rng, lead + (I,), case.dtype)
    n_states = len(spec.states)
    states = [present(_rand(rng, lead + (H,), case.dtype, 0.5), case.layout)
              for _ in range(n_states)]
    hx = None if case.seed % 2 == 0 else (tuple(states) if n_states == 2 else states[0])
    fwd = Call(cell.forward, (present(x_t, case.layout), hx))
    if not backward:
        return fwd
    _, cache = fwd()
    grads_in = [present(_rand(rng, lead + (H,), case.dtype), case.layout)
                for _ in range(n_states)]
    return Call(cell.backward, (grads_in[0], cache, *grads_in[1:]))


def _step_call(cell, case, impl):
    """layer.step of a unidirectional stack of 1 + seed % 2 layers on x_t (B, I), the
    state given on odd seeds."""
    cls = getattr(fastbptt, SPECS[cell].torch_name)
    I, H = max(case.I, 1), max(case.H, 1)
    L = 1 + case.seed % 2
    layer = cls(I, H, num_layers=L, bias=case.bias, dtype=case.dtype, seed=case.seed,
                backend=impl)
    rng = case.rng()
    x_t = _rand(rng, (case.B, I), case.dtype)
    states = [present(_rand(rng, (L, case.B, H), case.dtype, 0.5), case.layout)
              for _ in layer.spec.states]
    state = None if case.seed % 2 == 0 else layer.state_from_arrays(states)
    return Call(layer.step, (present(x_t, case.layout), state))


def _stepper_call(cell, case, impl):
    """Two advances of an nn.stepper.Stepper on x_t (B, I) from a layer.step Call's
    layer and state: (the two outputs, the state after them)."""
    step = _step_call(cell, case, impl)
    layer = step.fn.__self__

    def two_steps(x_t, state):
        stepper = Stepper(layer, case.B, state)
        first = stepper.advance(x_t).copy()
        return first, stepper.advance(x_t), stepper.state()
    return Call(two_steps, step.args)


def _loss_call(name, case, impl):
    """A fused head + loss over h (T, B, H) -> V = max(I, 1) outputs: mask when the case
    has lengths, ignore_index (cross-entropy) on odd seeds, the reduction by seed."""
    rng = case.rng()
    T, B, H, V, dt = case.T, case.B, case.H, max(case.I, 1), case.dtype
    h = _rand(rng, (B, T, H) if case.batch_first else (T, B, H), dt)
    W = _rand(rng, (V, H), dt, 1.0 / np.sqrt(max(H, 1)))
    b = _rand(rng, (V,), dt, 0.3) if case.bias else None
    lead = h.shape[:-1]
    kwargs = {"reduction": ("mean", "sum")[case.seed % 2]}
    if name == "softmax_cross_entropy":
        targets = rng.integers(0, V, size=lead)
        if case.seed % 3 == 0:
            targets[rng.random(lead) < 0.3] = -100
            kwargs["ignore_index"] = -100
    elif name == "sigmoid_binary_cross_entropy":
        targets = rng.uniform(size=lead + (V,)).astype(dt)
    else:
        targets = _rand(rng, lead + (V,), dt)
    if case.lengths:
        kwargs["mask"] = rng.random(lead) < 0.7
    fn = getattr(_module(impl), name)
    p = [present(a, case.layout) for a in (h, W, b, targets)]
    return Call(fn, tuple(p), kwargs)


LOSSES = ("softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error")

REGISTRY = [entry for spec in SPECS.values() for entry in (
    Entry(spec.forward_name, lambda case, impl, c=spec.name: _forward_call(c, case, impl)[0]),
    Entry(spec.backward_name, lambda case, impl, c=spec.name: _backward_call(c, case, impl)),
)] + [entry for spec in SPECS.values() for entry in (
    Entry(f"{spec.torch_name}.forward",
          lambda case, impl, c=spec.name: _layer_call(c, case, impl)),
    Entry(f"{spec.torch_name}.backward",
          lambda case, impl, c=spec.name: _layer_call(c, case, impl, True)),
)] + [Entry(name, lambda case, impl, name=name: _loss_call(name, case, impl))
      for name in LOSSES]
REGISTRY += [Entry(f"{spec.torch_name}.step",
                   lambda case, impl, c=spec.name: _step_call(c, case, impl))
             for spec in SPECS.values()]
REGISTRY += [Entry(f"{spec.torch_name}.Stepper",
                   lambda case, impl, c=spec.name: _stepper_call(c, case, impl))
             for spec in SPECS.values()]
REGISTRY += [Entry(f"{spec.torch_name}Cell.{method}",
                   lambda case, impl, c=spec.name, b=(method == "backward"):
                   _cell_class_call(c, case, impl, b))
             for spec in SPECS.values() for method in ("forward", "backward")]


def _projected_sizes(case):
    """H >= 2 and 0 < P < H of a projected LSTM (torch's proj_size) for this case."""
    H = max(case.H, 2)
    return H, 1 + case.seed % (H - 1)


def _projected_call(case, impl, backward=False):
    """lstm_forward with W_hr (P, H): h0 (B, P), c0 (B, H), W_hh (4H, P); backward runs
    its own forward for the cache, dh (T, B, P), dh_n (B, P), dc_n (B, H)."""
    H, P = _projected_sizes(case)
    rng = case.rng()
    T, B, I, dt = case.T, case.B, case.I, case.dtype
    arrays = [_rand(rng, (B, T, I) if case.batch_first else (T, B, I), dt),
              _rand(rng, (B, P), dt, 0.5), _rand(rng, (B, H), dt, 0.5),
              _rand(rng, (4 * H, I), dt, 1.0 / np.sqrt(max(I, 1))),
              _rand(rng, (4 * H, P), dt, 0.6 / np.sqrt(P)),
              _rand(rng, (4 * H,), dt, 0.3) if case.bias else None,
              _rand(rng, (4 * H,), dt, 0.3) if case.bias else None]
    W_hr = _rand(rng, (P, H), dt, 1.0 / np.sqrt(H))
    lengths = rng.integers(0, T + 1, size=B) if case.lengths else None
    m = _module(impl)
    fwd = Call(m.lstm_forward, tuple(present(a, case.layout) for a in arrays),
               {"batch_first": case.batch_first, "lengths": lengths,
                "W_hr": present(W_hr, case.layout)})
    if not backward:
        return fwd
    _, cache = fwd()
    dh = _rand(rng, (B, T, P) if case.batch_first else (T, B, P), dt)
    return Call(m.lstm_backward, (present(dh, case.layout), cache),
                {"dh_n": present(_rand(rng, (B, P), dt), case.layout),
                 "dc_n": present(_rand(rng, (B, H), dt), case.layout)})


def _projected_step_call(case, impl):
    """layer.step of a unidirectional projected stack: state h (L, B, P), c (L, B, H),
    given on odd seeds."""
    H, P = _projected_sizes(case)
    I, L = max(case.I, 1), 1 + case.seed % 2
    layer = fastbptt.LSTM(I, H, num_layers=L, bias=case.bias, dtype=case.dtype,
                          seed=case.seed, backend=impl, proj_size=P)
    rng = case.rng()
    x_t = _rand(rng, (case.B, I), case.dtype)
    state = None if case.seed % 2 == 0 else tuple(
        present(_rand(rng, (L, case.B, n), case.dtype, 0.5), case.layout) for n in (P, H))
    return Call(layer.step, (present(x_t, case.layout), state))


REGISTRY += [Entry("projected lstm_forward", _projected_call),
             Entry("projected lstm_backward",
                   lambda case, impl: _projected_call(case, impl, True)),
             Entry("projected LSTM.forward",
                   lambda case, impl: _layer_call("lstm", case, impl, projected=True)),
             Entry("projected LSTM.backward",
                   lambda case, impl: _layer_call("lstm", case, impl, True, projected=True)),
             Entry("projected LSTM.step", _projected_step_call)]


def _embedding_call(case, impl, backward=False):
    """embedding_forward over (T, B) indices (or (B, T)) into a (max(I, 1), H) weight,
    padding_idx 0 on odd seeds; backward runs its own forward for the cache."""
    rng = case.rng()
    V, shape = max(case.I, 1), (case.B, case.T) if case.batch_first else (case.T, case.B)
    indices = rng.integers(0, V, size=shape)
    weight = _rand(rng, (V, case.H), case.dtype)
    padding_idx = 0 if case.seed % 2 else None
    m = _module(impl)
    fwd = Call(m.embedding_forward, (present(indices, case.layout),
                                     present(weight, case.layout), padding_idx))
    if not backward:
        return fwd
    _, cache = fwd()
    return Call(m.embedding_backward,
                (present(_rand(rng, shape + (case.H,), case.dtype), case.layout), cache))


REGISTRY += [Entry("embedding_forward", _embedding_call),
             Entry("embedding_backward", lambda case, impl: _embedding_call(case, impl, True))]


def _gemm_call(case, impl):
    """fastbptt._kernels.blas.gemm_py, C := alpha op(A) op(B) + beta C in place: the
    BLAS shim's test entry point (writes its output argument C by design)."""
    from fastbptt._kernels import blas
    rng = case.rng()
    ta, tb = bool(case.seed % 2), bool(case.seed // 2 % 2)
    m, n, k = case.T, case.B, case.H
    A = _rand(rng, (k, m) if ta else (m, k), case.dtype)
    B = _rand(rng, (n, k) if tb else (k, n), case.dtype)
    return Call(blas.gemm_py, (ta, tb, 0.5, A, B, 0.25, _rand(rng, (m, n), case.dtype)))


def _gemv_call(case, impl):
    """fastbptt._kernels.blas.gemv_py, y := alpha op(A) x + beta y in place."""
    from fastbptt._kernels import blas
    rng = case.rng()
    ta = bool(case.seed % 2)
    m, n = case.T, case.H
    x = _rand(rng, (m if ta else n,), case.dtype)
    y = _rand(rng, (n if ta else m,), case.dtype)
    return Call(blas.gemv_py, (ta, 0.5, _rand(rng, (m, n), case.dtype), x, 0.25, y))


def _cs231n_call(name, case, impl):
    """fastbptt.compat.cs231n.{rnn,lstm}_{forward,backward}: (N, T, D) batch-major."""
    from fastbptt.compat import cs231n
    rng = case.rng()
    N, T, D, H, dt = case.B, case.T, case.I, case.H, case.dtype
    G = 4 if name.startswith("lstm") else 1
    x, h0 = _rand(rng, (N, T, D), dt), _rand(rng, (N, H), dt, 0.5)
    Wx = _rand(rng, (D, G * H), dt, 1.0 / np.sqrt(max(D, 1)))
    Wh = _rand(rng, (H, G * H), dt, 0.6 / np.sqrt(max(H, 1)))
    b = _rand(rng, (G * H,), dt, 0.3)
    cell = name.split("_")[0]
    fwd = Call(getattr(cs231n, f"{cell}_forward"),
               tuple(present(a, case.layout) for a in (x, h0, Wx, Wh, b)))
    if name.endswith("forward"):
        return fwd
    _, cache = fwd()
    return Call(getattr(cs231n, f"{cell}_backward"),
                (present(_rand(rng, (N, T, H), dt), case.layout), cache))


def _minchar_call(case, impl):
    """fastbptt.compat.minchar.lossFun with min-char-rnn's column-vector shapes."""
    from fastbptt.compat import minchar
    rng = case.rng()
    V, H, T, dt = max(case.I, 1), max(case.H, 1), max(case.T, 1), case.dtype
    inputs = rng.integers(0, V, T).tolist()
    targets = rng.integers(0, V, T).tolist()
    arrays = (_rand(rng, (H, 1), dt), _rand(rng, (H, V), dt, 0.1), _rand(rng, (H, H), dt, 0.1),
              _rand(rng, (V, H), dt, 0.1), np.zeros((H, 1), dt), np.zeros((V, 1), dt))
    return Call(minchar.lossFun,
                (inputs, targets, *(present(a, case.layout) for a in arrays)))


# Entry points that the fuzzer also hammers (tools/fuzz.py) without a reference twin to
# compare against: the BLAS shim's test entry points (they write their output argument by
# design) and the compat adapters (tested against course-style NumPy in their own files).
FUZZ_EXTRA = [
    Entry("blas.gemm_py", _gemm_call, impls=("compiled",)),
    Entry("blas.gemv_py", _gemv_call, impls=("compiled",)),
] + [Entry(f"cs231n.{name}", lambda case, impl, name=name: _cs231n_call(name, case, impl),
           impls=("compiled",))
     for name in ("rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward")] + [
    Entry("minchar.lossFun", _minchar_call, impls=("compiled",)),
]


def entry(name):
    """The REGISTRY entry called `name`."""
    for e in REGISTRY:
        if e.name == name:
            return e
    raise KeyError(name)


def flatten(result):
    """Every array a call returned, in a fixed order, for comparing two calls: arrays,
    the fields of tuples and NamedTuples, dict values by key, a cache's h_n/c_n."""
    out = []
    if result is None:
        return out
    if isinstance(result, np.ndarray):
        out.append(result)
    elif isinstance(result, dict):
        for key in sorted(result):
            out.extend(flatten(result[key]))
    elif isinstance(result, (tuple, list)):
        for item in result:
            out.extend(flatten(item))
    elif isinstance(result, (int, float, np.floating)):
        out.append(np.asarray(result))
    else:   # an opaque cache: its public final states
        for attr in ("h_n", "c_n"):
            if hasattr(result, attr):
                out.append(getattr(result, attr))
    return out


# ---------------------------------------------------------------- junk arguments

class _Opaque:
    """An object no function accepts."""


def junk_values(value, rng):
    """(label, junk) replacements for an argument whose valid value is `value`: wrong
    types, dtypes, ndims and shapes, NaN, huge broadcast views, empty arrays. Some of
    them may be valid (a NaN array, None for an optional argument): the harnesses accept
    success or a documented exception, nothing else."""
    junk = [("None", None), ("int", 3), ("str", "abc"), ("object", _Opaque()),
            ("dict", {"a": 1}), ("ragged", [[1.0, 2.0], [3.0]]), ("nan", float("nan")),
            ("bool", True), ("neg", -1)]
    a = value if isinstance(value, np.ndarray) else None
    if a is None:
        junk += [("array1", np.ones(3)), ("array0", np.zeros(0)),
                 ("huge", np.broadcast_to(np.float32(0), (2**20, 2**20)))]
        return junk
    shape = a.shape
    dt = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
    other = np.float32 if dt == np.float64 else np.float64
    junk += [
        ("int", a.astype(np.int64)), ("bool", a.astype(bool)),
        ("complex", a.astype(np.complex128)), ("object", a.astype(object)),
        ("float16", a.astype(np.float16)), ("other_float", a.astype(other)),
        ("bigendian", a.astype(dt.newbyteorder(">"))),
        ("list", a.tolist()),
        ("scalar", np.asarray(1.0, dt)),
        ("more_dims", a[None]),
        ("fewer_dims", a.reshape(-1) if a.ndim > 1 else np.asarray(a.sum(), a.dtype)),
        ("nan", np.full(shape, np.nan, dt)), ("inf", np.full(shape, -np.inf, dt)),
    ]
    if a.ndim:
        for axis in range(a.ndim):
            bigger = list(shape)
            bigger[axis] += 1 + int(rng.integers(3))
            junk.append((f"shape+{axis}", np.zeros(bigger, dt)))
            smaller = list(shape)
            smaller[axis] = 0
            junk.append((f"empty{axis}", np.zeros(smaller, dt)))
            huge = list(shape)
            huge[axis] = 2**31 + 5
            junk.append((f"huge{axis}", np.broadcast_to(np.zeros((1,) * a.ndim, dt),
                                                        tuple(huge))))
        if a.ndim > 1:   # zero elements, but one size beyond any C int
            huge_empty = [2**40] + [0] * (a.ndim - 1)
            junk.append(("huge_empty", np.broadcast_to(np.zeros((1,) * a.ndim, dt),
                                                       tuple(huge_empty))))
        junk.append(("reversed", a[::-1]))
        if a.dtype.kind in "iu":
            junk += [("too_big", a + 10**6), ("negative", a - 10**6),
                     ("uint", np.abs(a).astype(np.uint64))]
    return junk


def mutate(call, rng):
    """A copy of `call` with one argument (positional or keyword) replaced by junk.
    Returns (description, call)."""
    slots = [("arg", i) for i in range(len(call.args))] + [("kw", k) for k in call.kwargs]
    extra_kw = [("kw", "check_finite"), ("kw", "bogus_keyword")]
    slots += extra_kw
    kind, key = slots[int(rng.integers(len(slots)))]
    if kind == "arg":
        value = call.args[key]
    else:
        value = call.kwargs.get(key)
    choices = junk_values(value, rng)
    label, junk = choices[int(rng.integers(len(choices)))]
    args, kwargs = list(call.args), dict(call.kwargs)
    if kind == "arg":
        args[key] = junk
    else:
        kwargs[key] = junk
    return f"{kind} {key} <- {label}", Call(call.fn, tuple(args), kwargs)


def random_case(rng, max_size=5, layouts=LAYOUTS):
    """A random Case, sizes 0..max_size (0 included: empty problems are valid)."""
    def size():
        return int(rng.integers(0, max_size + 1)) if rng.random() < 0.15 \
            else int(rng.integers(1, max_size + 1))
    return Case(T=size(), B=size(), I=size(), H=size(),
                dtype=(np.float32, np.float64)[int(rng.integers(2))],
                batch_first=bool(rng.integers(2)), layout=layouts[int(rng.integers(len(layouts)))],
                lengths=bool(rng.integers(2)),
                nonlinearity=NONLINEARITIES[int(rng.integers(len(NONLINEARITIES)))],
                bias=bool(rng.integers(2)), seed=int(rng.integers(2**31)))
