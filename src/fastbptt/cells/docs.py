"""The sections that every cell's public functions document alike, written once.

The forward and backward functions of each cell, compiled (fastbptt.rnn_forward, ...)
and reference (fastbptt.reference.rnn_forward, ...), take the same arguments but for the
cell's own options, and return the same records. Their numpydoc docstrings hold what is
the cell's own (its equations, its options, an example) and name each shared block by a
line of its own, `{forward_options}`, that `fill` replaces (help() and the API reference
show the whole text). The blocks that differ by cell only in names and sizes (the initial
states, the gate blocks of the weights, the Grads record's fields) are written here from
the cell's CellSpec. Pure Python: the reference uses it.
"""
import re
import textwrap

PARAGRAPHS = {
    # the input and the output every compiled cell's forward documents alike
    "x_parameter": """\
x : ndarray, shape (T, B, I), or (B, T, I) with ``batch_first=True``
    The input sequence, float32 or float64: its dtype decides the dtype of the
    computation and of every result. A contiguous batch-first array is read without
    copying.""",
    "h_return": """\
h : ndarray, shape (T, B, H), or (B, T, H) with ``batch_first=True``
    Every hidden state, a new array of x's dtype.""",
    # the same for the reference twins, shorter: their pages point to the compiled ones
    "reference_x_parameter": """\
x : ndarray, shape (T, B, I), or (B, T, I) with ``batch_first=True``
    float32 or float64: its dtype decides.""",
    "reference_h_return": """\
h : ndarray, shape (T, B, H), or (B, T, H) with ``batch_first=True``
    Every hidden state, zero past each sequence's length.""",
    # numpydoc Parameters entries: the options of every cell's forward function
    "forward_options": """\
batch_first : bool, default False
    ``x`` and the output are (B, T, ...) instead of (T, B, ...).
lengths : array_like of int, shape (B,), or None
    Sequence b ends after ``lengths[b]`` steps, each in [0, T]: past its end its state
    is carried unchanged, its outputs are zero and nothing there reaches a gradient
    (PyTorch's PackedSequence semantics). None: every sequence has T steps.
check_finite : bool, default False
    Raise ValueError if an argument holds NaN or Inf (``x`` only inside the lengths).
    By default nothing is scanned and NaN and Inf propagate as IEEE arithmetic makes
    them.
checkpoint : None, bool or int, default None
    None or False: keep every step for the backward pass. An int k: keep the state
    every k steps and recompute each segment during backward
    (fastbptt.cells.checkpoint), for O(T/k + k) memory instead of O(T) at the price of
    one more forward, with the same results to rounding; True: k = ceil(sqrt(T)).""",
    # numpydoc Raises section of the compiled forward functions
    "forward_raises": """\
Raises
------
ValueError
    A wrong ndim or shape (the message names the argument and the expected shape),
    ``lengths`` out of [0, T], sizes beyond BLAS's 32-bit indices, or NaN/Inf with
    ``check_finite=True``.
TypeError
    Mixed float dtypes (naming the arrays), or an integer, boolean, complex, object,
    float16 or byte-swapped array.""",
    # numpydoc Raises section of the compiled backward functions
    "backward_raises": """\
Raises
------
ValueError
    No gradient given, or one of the wrong shape (the message names it), or NaN/Inf
    with ``check_finite=True``.
TypeError
    A gradient of another dtype than the forward's, or a cache from elsewhere.""",
}


def _entry(head, *sentences):
    """A numpydoc entry: its `name : type` line and the description, indented."""
    body = textwrap.fill(" ".join(sentences), 84, initial_indent="    ",
                         subsequent_indent="    ")
    return f"{head}\n{body}"


def _section(title, *entries):
    """A numpydoc section: its title, underlined, then its entries."""
    return "\n".join([title, "-" * len(title), *entries])


def _states_words(spec):
    """How the prose names the states: "state" or "hidden and cell states"."""
    return "hidden and cell states" if len(spec.states) > 1 else "state"


def _backward_arguments(spec):
    """numpydoc Parameters entries of a cell's backward function: dh, cache, the final
    states' gradients (spec.final_grads) and check_finite."""
    names = ", ".join(spec.final_grads)
    s = "s" if len(spec.final_grads) > 1 else ""
    states = _states_words(spec)
    return "\n".join([
        _entry("dh : ndarray or None",
               f"dL/dh at every step, shaped like the output of {spec.forward_name}",
               "(many-to-many), or None when the loss reaches only the final state(s)."),
        _entry("cache : object",
               f"What {spec.forward_name} returned; a backward call runs on the backend",
               "that made its cache."),
        _entry(f"{names} : ndarray, shape (B, H), or None",
               f"The gradient{s} reaching the final {states} from outside (a loss on the",
               "last state, or a gradient carried back from a later chunk). At least one",
               f"of dh, {names} must be given."),
        _entry("check_finite : bool, default False",
               f"Raise ValueError if dh (inside the lengths) or {names} holds NaN or",
               "Inf."),
    ])


def _gates_times_H(spec):
    return f"{spec.gates}H" if spec.gates > 1 else "H"


def _bias_parameters(spec):
    return _entry(f"b_ih, b_hh : ndarray, shape ({_gates_times_H(spec)},), or None",
                  "The two biases, PyTorch's layout; give both or neither (without",
                  "biases their gradients are None).")


def _weight_parameters(spec, reference=False):
    """The W_ih and W_hh entries: (G*H, I) and (G*H, H), PyTorch's gate blocks."""
    GH = _gates_times_H(spec)
    # one gate has no blocks to name
    blocks, same = ((f", gate blocks {', '.join(spec.gate_names)}", ", the same gate blocks")
                    if spec.gates > 1 else ("", ""))
    if reference:
        return "\n".join([f"W_ih : ndarray, shape ({GH}, I)",
                          _entry(f"W_hh : ndarray, shape ({GH}, H)", f"The weights{blocks}.")])
    return "\n".join([_entry(f"W_ih : ndarray, shape ({GH}, I)",
                             f"Input-to-hidden weights{blocks}."),
                      _entry(f"W_hh : ndarray, shape ({GH}, H)",
                             f"Hidden-to-hidden weights{same}.")])


def _forward_parameters(spec):
    """The Parameters section of a cell's compiled forward up to the cell's own options:
    x, the initial states (spec.initial_states), the weights and the biases."""
    states = _states_words(spec)
    return _section(
        "Parameters",
        PARAGRAPHS["x_parameter"],
        _entry(f"{', '.join(spec.initial_states)} : ndarray, shape (B, H), or None",
               f"The initial {states}; None means zeros."),
        _weight_parameters(spec),
        _bias_parameters(spec))


def _final_states(spec):
    """The cache's attributes that hold the final states, as a sentence's subject."""
    names = [f"``cache.{s}_n``" for s in spec.states]
    if len(names) == 1:
        return f"{names[0]} is the final state"
    return f"{', '.join(names[:-1])} and {names[-1]} are the final states"


def _forward_returns(spec):
    """The Returns section of a cell's compiled forward: h and the cache."""
    return _section(
        "Returns",
        PARAGRAPHS["h_return"],
        _entry("cache : object",
               f"Opaque, for :func:`{spec.backward_name}`. {_final_states(spec)} (B, H), each",
               "sequence's at its own last step. It refers to ``x`` and the weights: do not",
               "change them in place before the backward call."))


def _grads_fields(spec):
    return ", ".join(spec.grads._fields)


def _backward_sections(spec):
    """Every section of a cell's compiled backward: Parameters, Returns (the fields of
    spec.grads), Raises and See Also."""
    returns = _entry(
        f"grads : {spec.grads.__name__}",
        f"A named tuple of new arrays of the forward's dtype: ``{_grads_fields(spec)}``.",
        "The gradients of the weights and biases are summed over all steps; ``db_ih`` and",
        "``db_hh`` are None when the forward had no biases.")
    return "\n\n".join([_section("Parameters", _backward_arguments(spec)),
                        _section("Returns", returns), _backward_see_also(spec)])


def _reference_forward_parameters(spec):
    """The Parameters section of a reference forward up to the cell's own options."""
    return _section(
        "Parameters",
        PARAGRAPHS["reference_x_parameter"],
        _entry(f"{', '.join(spec.initial_states)} : ndarray, shape (B, H), or None",
               "None means zeros."),
        _weight_parameters(spec, reference=True),
        _entry(f"b_ih, b_hh : ndarray, shape ({_gates_times_H(spec)},), or None",
               "Give both or neither."))


def _reference_forward_returns(spec):
    """The Returns section of a reference forward."""
    return _section(
        "Returns",
        PARAGRAPHS["reference_h_return"],
        _entry("cache : object", f"For :func:`{spec.backward_name}`; {_final_states(spec)}."))


def _reference_backward_sections(spec):
    """The Parameters and Returns sections of a reference backward."""
    returns = _entry(f"grads : {spec.grads.__name__}",
                     f"``{_grads_fields(spec)}``; db_ih and db_hh are None when the",
                     "forward had no biases.")
    return "\n\n".join([_section("Parameters", _backward_arguments(spec)),
                        _section("Returns", returns)])


def _forward_see_also(spec):
    """The Raises and See Also sections of a cell's compiled forward."""
    return (PARAGRAPHS["forward_raises"] + "\n\nSee Also\n--------\n"
            f"{spec.backward_name} : the gradients.\n"
            f"fastbptt.reference.{spec.forward_name} : the pure-NumPy twin, same signature.")


def _backward_see_also(spec):
    """The Raises and See Also sections of a cell's compiled backward."""
    return (PARAGRAPHS["backward_raises"] + "\n\nSee Also\n--------\n"
            f"{spec.forward_name} : the forward pass that makes ``cache``.\n"
            f"fastbptt.reference.{spec.backward_name} : the pure-NumPy twin.")


# the paragraphs written from the cell's spec
SPEC_PARAGRAPHS = {"backward_arguments": _backward_arguments,
                   "bias_parameters": _bias_parameters,
                   "forward_raises_see_also": _forward_see_also,
                   "backward_raises_see_also": _backward_see_also,
                   # whole sections: what a cell's docstrings hold between its own text
                   "forward_parameters": _forward_parameters,
                   "forward_returns_raises_see_also":
                       lambda spec: _forward_returns(spec) + "\n\n" + _forward_see_also(spec),
                   "backward_sections": _backward_sections,
                   "reference_forward_parameters": _reference_forward_parameters,
                   "reference_forward_returns": _reference_forward_returns,
                   "reference_backward_sections": _reference_backward_sections}

_PLACEHOLDER = re.compile(r"^([ \t]*)\{(\w+)\}[ \t]*$", re.MULTILINE)


def fill_from(paragraphs):
    """Decorator of a function or class: its docstring with each `{name}` line replaced
    by paragraphs(name), indented as that line is (the layers, optimizers and loss heads
    document their shared parameters this way too)."""
    def paragraph(match):
        indent, name = match.groups()
        return "\n".join(indent + line if line else "" for line in
                         paragraphs(name).splitlines())

    def decorate(obj):
        obj.__doc__ = _PLACEHOLDER.sub(paragraph, obj.__doc__)
        return obj
    return decorate


def fill(spec):
    """Decorator of a public function of the cell `spec`: its docstring with each
    `{name}` line replaced by PARAGRAPHS[name] (or SPEC_PARAGRAPHS[name](spec)), indented
    as that line is. Put it below @dispatch, which copies the docstring."""
    return fill_from(lambda name: PARAGRAPHS[name] if name in PARAGRAPHS
                     else SPEC_PARAGRAPHS[name](spec))
