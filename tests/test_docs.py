"""The cells' public docstrings (fastbptt.cells.docs fills their shared paragraphs): every
placeholder filled, and each documents every argument the function takes."""
import inspect
import re

import pytest

import fastbptt
from fastbptt import reference
from fastbptt.cells import docs
from fastbptt.cells.spec import SPECS


@pytest.mark.parametrize("module", [fastbptt, reference], ids=["compiled", "reference"])
@pytest.mark.parametrize("spec", SPECS.values(), ids=lambda s: s.name)
@pytest.mark.parametrize("which", ["forward_name", "backward_name"])
def test_cell_docstrings_are_filled_and_name_every_argument(module, spec, which):
    func = getattr(module, getattr(spec, which))
    doc = inspect.getdoc(func)
    assert not re.search(r"^\s*\{\w+\}\s*$", doc, re.MULTILINE), doc
    for name in inspect.signature(func).parameters:
        if name != "cache":
            assert re.search(rf"\b{name}\b", doc), f"{func.__name__} does not document {name}"


def test_fill_indents_each_line_of_a_paragraph_as_its_placeholder():
    @docs.fill(SPECS["lstm"])
    def f():
        """Title.

          {backward_arguments}
        End."""
    lines = f.__doc__.splitlines()
    body = lines[2:-1]
    assert len(body) > 2 and all(line.startswith("          ") for line in body)
    assert "dh_n, dc_n" in f.__doc__ and lines[-1].strip() == "End."
    with pytest.raises(KeyError):
        docs.fill(SPECS["rnn"])(type("g", (), {"__doc__": "{no_such_paragraph}"}))
