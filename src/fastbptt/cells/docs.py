"""The paragraphs that every cell's public functions document alike, written once.

The forward and backward functions of each cell, compiled (fastbptt.rnn_forward, ...)
and reference (fastbptt.reference.rnn_forward, ...), take the same options; their
docstrings hold what is the cell's own (the arrays and their shapes, what is returned)
and name a shared paragraph by a line of its own, `{forward_options}`, that `fill` replaces
(help() and the API reference show the whole text). Pure Python: the reference uses it.
"""
import re
import textwrap

PARAGRAPHS = {
    # the options of every cell's forward function
    "forward_options": """\
lengths (B,) ints in [0, T], or None: sequence b ends after lengths[b] steps (its
state is carried unchanged past that, its outputs are zero).
checkpoint: None (store every step for backward), True or an int k: store the state
every k steps (k = ceil(sqrt(T)) for True) and recompute each segment in backward
(fastbptt.cells.checkpoint), for O(T/k + k) memory instead of O(T); the same results
to rounding.
check_finite: raise ValueError if an argument holds NaN or Inf (x only inside the
lengths); by default NaN and Inf propagate as IEEE arithmetic makes them.""",
}



def _wrapped(*sentences):
    return "\n".join(textwrap.fill(x, 84) for x in sentences)


def _backward_arguments(spec):
    """dh, the final states' gradients (spec.final_grads) and check_finite of a cell's
    backward function."""
    names = ", ".join(spec.final_grads)
    grads = " and ".join(f"dL/{name}" for name in spec.final_grads)
    s = "s" if len(spec.final_grads) > 1 else ""
    *others, last = ("dh (inside the lengths)", *spec.final_grads)
    checked = f"{', '.join(others)} or {last}"
    return _wrapped(
        f"dh: dL/dh at every step, shaped like {spec.forward_name}'s output, or None "
        f"(many-to-one);",
        f"{names}: {grads} (B, H), the gradient{s} reaching the final state{s} from "
        f"outside, or None. At least one of dh, {names} must be given.",
        f"check_finite: raise ValueError if {checked} holds NaN or Inf.")


# the paragraphs written from the cell's spec
SPEC_PARAGRAPHS = {"backward_arguments": _backward_arguments}

_PLACEHOLDER = re.compile(r"^([ \t]*)\{(\w+)\}[ \t]*$", re.MULTILINE)


def fill(spec):
    """Decorator of a public function of the cell `spec`: its docstring with each
    `{name}` line replaced by PARAGRAPHS[name] (or SPEC_PARAGRAPHS[name](spec)), indented
    as that line is. Put it below @dispatch, which copies the docstring."""
    def paragraph(match):
        indent, name = match.groups()
        text = PARAGRAPHS[name] if name in PARAGRAPHS else SPEC_PARAGRAPHS[name](spec)
        return "\n".join(indent + line for line in text.splitlines())

    def decorate(func):
        func.__doc__ = _PLACEHOLDER.sub(paragraph, func.__doc__)
        return func
    return decorate
