"""Cell problems read from CellSpec for the property tests (test_nan_policy.py,
test_robustness.py): which arguments a cell's forward and backward take comes from its
spec (states, options), not from its name."""
from _registry import _cell_arrays
from fastbptt.cells.spec import SPECS, get_spec

# every cell's initial-state and final-gradient keywords: _cell_arrays draws them all
_INITIAL = {name for spec in SPECS.values() for name in spec.initial_states}
_FINAL = {name for spec in SPECS.values() for name in spec.final_grads}


def cell_problem(cell, case):
    """(forward keywords, backward keywords but the cache) of a cell for a _registry.Case:
    x, the spec's initial states, weights and biases; dh and the spec's final states'
    gradients. Drawn by _registry._cell_arrays."""
    spec = get_spec(cell)
    a, _, up = _cell_arrays(case, spec.gates)
    a = {k: v for k, v in a.items() if k not in _INITIAL or k in spec.initial_states}
    up = {k: v for k, v in up.items() if k not in _FINAL or k in spec.final_grads}
    return a, up


def cell_functions(cell, module):
    """(forward, backward) of a cell in module (fastbptt or fastbptt.reference)."""
    spec = get_spec(cell)
    return getattr(module, spec.forward_name), getattr(module, spec.backward_name)


def nonlinearity_kwargs(cell, nonlinearity):
    """{"nonlinearity": ...} for a cell whose spec has that option, else {}."""
    return {"nonlinearity": nonlinearity} if "nonlinearity" in get_spec(cell).options else {}
