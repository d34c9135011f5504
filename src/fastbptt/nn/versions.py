"""Version counters of parameter arrays, so a layer can tell that its parameters changed
between a forward and the backward that differentiates it.

BPTT's backward reuses the forward's weights (dh_{t-1} = dA_t W_hh, dx = dA W_ih); if an
optimizer step updated them in place in between (an easy mistake, since fastbptt's
optimizers update in place), the gradients returned would be silently wrong. So every
fastbptt optimizer calls mark_modified(p) on each parameter it updates; a layer's forward
records (key, array, version) for each of its parameters and its backward raises
ParametersChangedError when an array was replaced (layer.params[key] = new, or
load_state_dict) or its version moved.

Cost: O(number of parameter arrays) per forward and per backward (a dict lookup each),
independent of their sizes; nothing is hashed or copied.

What cannot be detected: in-place writes by any other code (your own `p -= lr * g`,
`layer.params[key][...] = value`, a write through a view or another library's optimizer
on the same memory). Code that writes parameters in place can call mark_modified(p)
itself to get the same protection.
"""
import weakref

_versions = {}   # id(array) -> writes counted; the entry goes with the array


def mark_modified(array):
    """Record that `array` (a parameter) was written in place."""
    key = id(array)
    if key not in _versions:
        _versions[key] = 0
        weakref.finalize(array, _versions.pop, key, None)   # ids are reused after death
    _versions[key] += 1


def version(array):
    """How many writes mark_modified recorded for `array` (0 for none)."""
    return _versions.get(id(array), 0)


class ParametersChangedError(RuntimeError):
    """A layer's parameters changed between its forward and this backward."""


def snapshot(params):
    """(key, array, version) of each parameter, for check_unchanged at backward."""
    return tuple((key, value, version(value)) for key, value in params.items())


def check_unchanged(params, recorded, who):
    """ParametersChangedError when `params` no longer holds the recorded arrays at their
    recorded versions."""
    for key, value, seen in recorded:
        current = params.get(key)
        if current is not value:
            raise ParametersChangedError(
                f"{who}: parameter {key!r} was replaced (layer.params[{key!r}] = ... or "
                f"load_state_dict) after the forward this backward differentiates; the "
                f"gradients would be wrong: run forward again")
        if version(value) != seen:
            raise ParametersChangedError(
                f"{who}: parameter {key!r} was updated in place (an optimizer step) after "
                f"the forward this backward differentiates; the gradients would be wrong: "
                f"call backward before optimizer.step, or run forward again")
