"""Cell-generic test problems for the contract suite (test_cell_contract.py), the per-cell
files and the property tests (test_nan_policy.py, test_robustness.py), driven by
CellSpec: no test reads a cell's name, only its spec's fields.

A Problem holds one cell's forward arguments and upstream gradients by argument name:

    x, the initial states (spec.initial_states: h0, and c0 for the LSTM), W_ih, W_hh, b_ih,
    b_hh, dh (like h) and the final states' gradients (spec.final_grads: dh_n, dc_n)

and runs them through one implementation (compiled or reference). The gradient record's
fields (spec.grads._fields: dx, dh0, [dc0,] dW_ih, dW_hh, db_ih, db_hh) are the gradients
of the argument named by the field without its leading "d".

The shapes that must reach each per-step product form (gemv / packed / transposed / plain)
are made from the policy itself (spec.step_form) by form_cases() and, for the packed form
at B <= GEMV_ROWS (which needs PACKED_MIN_STEPS steps), few_rows_packed_case(), not
written down by hand.
"""
import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional

import numpy as np
import pytest

import fastbptt
from _helpers import DTYPES, numerical_gradient, relative_error
from _registry import spec_arrays
from fastbptt import reference
from fastbptt.cells.spec import (
    GEMV_ROWS,
    PACKED_MIN_STEPS,
    SPECS,
    STEP_FORMS,
    CellSpec,
    get_spec,
    step_form,
)
from fastbptt.runtime import packing

SPEC_LIST = tuple(SPECS.values())

IMPL_MODULES = {"compiled": fastbptt, "reference": reference}
IMPLS = tuple(IMPL_MODULES)

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
impl_param = pytest.mark.parametrize("impl", IMPLS)
layout_param = pytest.mark.parametrize("batch_first", [False, True],
                                       ids=["time_major", "batch_first"])


def shapes_param(shapes, name="shape"):
    """Parametrise `name` over (T, B, I, H) shapes, each id "TxBxIxH"."""
    return pytest.mark.parametrize(name, shapes, ids=[shape_id(s) for s in shapes])

# Every value of each CellSpec option that the tests run, and the subsets some oracles take:
# torch.nn.RNN has tanh and relu only; finite differences need a loss that is smooth at
# the point (relu's kink at 0 has its own test in test_rnn.py, on a seed clear of it).
OPTION_VALUES = {"nonlinearity": ("tanh", "relu", "sigmoid", "identity")}
TORCH_OPTION_VALUES = {"nonlinearity": ("tanh", "relu")}
SMOOTH_OPTION_VALUES = {"nonlinearity": ("tanh", "sigmoid", "identity")}

# Bad values of each option: (id, value, exception, message regexes).
OPTION_ERRORS = {
    "nonlinearity": [
        ("unknown", "softplus", ValueError, ["nonlinearity", "softplus"]),
        ("case", "Tanh", ValueError, ["nonlinearity"]),
        ("None", None, ValueError, ["nonlinearity"]),
        ("unhashable", ["tanh"], ValueError, ["nonlinearity"]),
    ],
}


def option_sets(spec, values=OPTION_VALUES):
    """Every combination of the spec's option values: [{}] for a cell without options."""
    keys = list(spec.options)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))]


def functions(spec, impl):
    """(forward, backward) of one implementation of a cell."""
    module = IMPL_MODULES[impl]
    return getattr(module, spec.forward_name), getattr(module, spec.backward_name)


def upstream_names(spec):
    """The upstream gradients backward takes: dh and the final states' (dh_n, dc_n)."""
    return ("dh",) + spec.final_grads


def grad_args(spec):
    """(gradient field, the argument it is the gradient of) pairs, in the record's order."""
    return [(name, name[1:]) for name in spec.grads._fields]


def modes(spec):
    """Which upstream gradients backward gets: dh alone (many-to-many), each final state's
    gradient alone (many-to-one: dh_n, and dc_n for the LSTM), and all of them."""
    out = {"many_to_many": ("dh",)}
    out.update({f"{g}_only": (g,) for g in spec.final_grads})
    out["all"] = upstream_names(spec)
    return out


def gate_rows(spec):
    """How the argument checks spell G*H: "H" for one gate, "4*H" for four."""
    return "H" if spec.gates == 1 else f"{spec.gates}*H"


def shape_id(shape):
    return "x".join(map(str, shape))


def options_id(options):
    return "-".join(str(v) for v in options.values()) or "default"


@dataclass
class Problem:
    """One cell's forward arguments and upstream gradients (None where not given)."""
    spec: CellSpec
    arrays: Dict[str, Optional[np.ndarray]]
    options: Dict[str, Any] = field(default_factory=dict)
    batch_first: bool = False
    lengths: Optional[np.ndarray] = None

    def __getitem__(self, name):
        return self.arrays[name]

    @property
    def dtype(self):
        return self.arrays["x"].dtype

    @property
    def shape(self):
        """(T, B, I, H)."""
        x = self.arrays["x"]
        T, B = (x.shape[1], x.shape[0]) if self.batch_first else x.shape[:2]
        return T, B, x.shape[2], self.arrays["W_hh"].shape[1]

    def forward_args(self):
        a = self.arrays
        return (a["x"], *(a[s] for s in self.spec.initial_states),
                a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"])

    def forward_kwargs(self):
        return {**self.options, "batch_first": self.batch_first, "lengths": self.lengths}

    def forward(self, impl="compiled"):
        """(h, cache)."""
        forward, _ = functions(self.spec, impl)
        return forward(*self.forward_args(), **self.forward_kwargs())

    def backward(self, cache, impl="compiled", given=None):
        """The Grads record from the upstream gradients named in `given` (all by default)."""
        _, backward = functions(self.spec, impl)
        given = upstream_names(self.spec) if given is None else given
        up = {n: self.arrays[n] if n in given else None for n in upstream_names(self.spec)}
        return backward(up.pop("dh"), cache, **up)

    def run(self, impl="compiled"):
        """(h, final states (h_n[, c_n]), grads) from one implementation."""
        h, cache = self.forward(impl)
        return h, final_states(self.spec, cache), self.backward(cache, impl)

    def loss(self, impl="compiled"):
        """L = sum(h * dh) + sum over the final states s_n of sum(s_n * ds_n): the scalar
        whose gradient backward returns."""
        h, cache = self.forward(impl)
        total = 0.0
        outputs = (h,) + final_states(self.spec, cache)
        for value, name in zip(outputs, upstream_names(self.spec)):
            if self.arrays[name] is not None:
                total += float(np.sum(value * self.arrays[name]))
        return total

    def given(self):
        """Every array argument by name (None left out)."""
        return {n: a for n, a in self.arrays.items() if a is not None}

    def with_(self, **changes):
        """A copy with arrays, options, batch_first or lengths replaced."""
        arrays, options, fields = dict(self.arrays), dict(self.options), {}
        for name, value in changes.items():
            if name in ("batch_first", "lengths"):
                fields[name] = value
            elif name in self.spec.options:
                options[name] = value
            else:
                assert name in arrays, f"{name} is not an argument of {self.spec.name}"
                arrays[name] = value
        return replace(self, arrays=arrays, options=options, **fields)

    def time_major(self, name):
        """Argument `name` (x or dh) as (T, B, .)."""
        a = self.arrays[name]
        return a.transpose(1, 0, 2) if self.batch_first else a


def final_states(spec, cache):
    """The cache's final states in spec.states order, each a new array (cache.h_n, ...)."""
    return tuple(getattr(cache, f"{s}_n") for s in spec.states)


def make_problem(spec, T, B, I, H, dtype=np.float64, *, options=None, batch_first=False,
                 bias=True, initial=None, upstream=None, lengths=None, seed=0):
    """A random, well-conditioned problem: W_hh scaled to spectral radius about 0.6 (the
    recurrence contracts, so rounding differences do not grow over long sequences), inputs,
    biases and initial states of order 1 (gates spread over their range, not saturated).

    `initial`: the initial states given (spec.initial_states by default, the others None);
    `upstream`: the upstream gradients given (all by default)."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    G = spec.gates
    initial = spec.initial_states if initial is None else initial
    upstream = upstream_names(spec) if upstream is None else upstream
    out_shape = (B, T, H) if batch_first else (T, B, H)
    arrays = {"x": rand(B, T, I) if batch_first else rand(T, B, I)}
    for s in spec.initial_states:
        arrays[s] = rand(B, H, scale=0.5) if s in initial else None
    arrays.update(W_ih=rand(G * H, I, scale=1.0 / np.sqrt(max(I, 1))),
                  W_hh=rand(G * H, H, scale=0.6 / np.sqrt(max(H, 1))),
                  b_ih=rand(G * H, scale=0.3) if bias else None,
                  b_hh=rand(G * H, scale=0.3) if bias else None)
    arrays["dh"] = rand(*out_shape) if "dh" in upstream else None
    for g in spec.final_grads:
        arrays[g] = rand(B, H) if g in upstream else None
    return Problem(spec, arrays, dict(spec.options if options is None else options),
                   batch_first, None if lengths is None else np.asarray(lengths))


def cell_numerical_gradient(p, name, impl="compiled"):
    """dL/d(argument `name`) of problem p's loss, by central differences (float64)."""
    return numerical_gradient(lambda v: p.with_(**{name: v}).loss(impl), p[name])


def assert_matches_finite_differences(p, impl, case=None):
    """Every gradient backward returns equals its central-difference estimate to 1e-6
    relative error, and none is degenerate (all zero)."""
    h, cache = p.forward(impl)
    if case is not None:
        assert_ran(case, cache)
    grads = p.backward(cache, impl)
    for grad_name, arg_name in grad_args(p.spec):
        analytic = getattr(grads, grad_name)
        numeric = cell_numerical_gradient(p, arg_name, impl)
        assert analytic.shape == numeric.shape
        assert np.max(np.abs(numeric)) > 1e-3, f"{arg_name}: degenerate test, zero gradient"
        err = relative_error(analytic, numeric)
        assert err < 1e-6, f"{grad_name}: relative error {err:.2e}"


# ---------------------------------------------------------------- the step-form policy

def process_step_form(spec, B, H, dtype, steps=None):
    """step_form as the compiled wrappers call it in this process, for a call of `steps`
    steps: with its packer (fastbptt.runtime.packing: "mkl" where the mkl package is
    installed, else "own")."""
    return step_form(spec, B, H, dtype, packing.packer(), steps)


def forced_step_form(spec, B, H, dtype, packer=None, steps=None):
    """step_form as if `dtype` were one of the spec's transposed_dtypes, and without
    packing: the transposed per-step product wherever its shape allows, also for a dtype
    whose policy never chooses it (the LSTM's float64), so that path is held to that
    dtype's tolerances; and one GEMV per row at B <= GEMV_ROWS whatever the number of
    steps. (packer, steps: the wrappers pass theirs; ignored.)"""
    return step_form(replace(spec, transposed_dtypes=(np.dtype(dtype),)), B, H, dtype)


def forced_packed_step_form(spec, B, H, dtype, packer=None, steps=None):
    """step_form with the packed form wherever either packer's policy packs (MKL's rows,
    the own packer's few rows from PACKED_MIN_STEPS steps on; never one step): this
    process's packer then runs it also where its own policy does not pack. (packer: the
    wrappers pass theirs; ignored.)"""
    forms = {step_form(spec, B, H, dtype, name, steps) for name in ("mkl", "own")}
    return "packed" if "packed" in forms else step_form(spec, B, H, dtype, None, steps)


def force_transposed(monkeypatch):
    """Make the compiled wrappers choose by forced_step_form for the rest of the test."""
    from fastbptt.cells import driver
    monkeypatch.setattr(driver, "step_form", forced_step_form)


def _forced_policy(form):
    return forced_packed_step_form if form == "packed" else forced_step_form


def batch_for(spec, form, H, dtype, steps, policy=process_step_form):
    """The batch size B whose per-step product (B rows against W_hh) `policy` runs as
    `form` at hidden size H in a call of `steps` steps: the most rows one GEMV per row
    takes, the fewest rows the packed, the transposed or the plain form takes; None when
    the policy never gives that form."""
    candidates = range(GEMV_ROWS, 0, -1) if form == "gemv" else range(1, 2 * H + 2)
    for B in candidates:
        if policy(spec, B, H, dtype, steps=steps) == form:
            return B
    return None


@dataclass(frozen=True)
class FormCase:
    """A (T, B, I, H) shape meant to run `form`; `forced` when only forced_step_form
    reaches that form for this spec and dtype (the test must call force_transposed)."""
    spec: CellSpec
    dtype: Any
    form: str
    shape: tuple
    forced: bool = False

    def policy(self):
        return _forced_policy(self.form) if self.forced else process_step_form

    def runs(self):
        """The form the chosen policy gives this shape."""
        T, B, I, H = self.shape
        return self.policy()(self.spec, B, H, self.dtype, steps=T)

    @property
    def id(self):
        return (f"{self.spec.name}-{np.dtype(self.dtype).name}-{self.form}-"
                f"{shape_id(self.shape)}{'-forced' if self.forced else ''}")


def form_cases(spec, dtype, T, I, H):
    """One FormCase per step form at (T, ., I, H): B from the policy (batch_for), forced
    where the spec's own policy never runs that form in this dtype; none for a form that
    not even the forced policy runs in T steps (the packed form at T = 1)."""
    cases = []
    for form in STEP_FORMS:
        B = batch_for(spec, form, H, dtype, T)
        forced = B is None
        if forced:
            B = batch_for(spec, form, H, dtype, T, policy=_forced_policy(form))
        if B is not None:
            cases.append(FormCase(spec, np.dtype(dtype), form, (T, B, I, H), forced))
    return cases


def few_rows_packed_case(spec, dtype, I, H):
    """The packed form at one row (B = 1 <= GEMV_ROWS), in a call of PACKED_MIN_STEPS
    steps, the fewest that pack so few rows (spec.step_form); forced where this process's
    packer does not pack them."""
    shape = (PACKED_MIN_STEPS, 1, I, H)
    forced = process_step_form(spec, 1, H, dtype, PACKED_MIN_STEPS) != "packed"
    return FormCase(spec, np.dtype(dtype), "packed", shape, forced)


def apply_policy(case, monkeypatch):
    """Force the transposed or the packed form when the case needs it."""
    if case.forced:
        from fastbptt.cells import driver
        monkeypatch.setattr(driver, "step_form", _forced_policy(case.form))


def assert_ran(case, cache):
    """The compiled cache records the per-step form its kernels ran: the one the case is
    for (a shape list meant to cover a path must reach it)."""
    if getattr(cache, "backend", None) == "compiled" and hasattr(cache, "form"):
        assert cache.form == case.form, f"{case.id} ran {cache.form}"


# ---------------------------------------------------------------- cells by name, for the
# property tests (test_nan_policy.py, test_robustness.py)

def cell_problem(cell, case):
    """(forward keywords, backward keywords but the cache) of a cell for a _registry.Case:
    x, the spec's initial states, weights and biases; dh and the spec's final states'
    gradients (_registry.spec_arrays)."""
    a, _, up = spec_arrays(get_spec(cell), case)
    return a, up


def cell_functions(cell, module):
    """(forward, backward) of a cell in module (fastbptt or fastbptt.reference)."""
    spec = get_spec(cell)
    return getattr(module, spec.forward_name), getattr(module, spec.backward_name)


def nonlinearity_kwargs(cell, nonlinearity):
    """{"nonlinearity": ...} for a cell whose spec has that option, else {}."""
    return {"nonlinearity": nonlinearity} if "nonlinearity" in get_spec(cell).options else {}
