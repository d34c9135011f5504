"""The documentation's examples run.

- Every ```python block of the pages under docs/ runs as a script, in a fresh namespace
  and a temporary directory, except blocks that say what else they are on their first
  line: ``# fragment`` (lines shown in the context of someone else's script) and the MPI
  script ``# train.py: mpiexec`` (test_distributed_mpi.py runs it under mpiexec).
- The Examples sections of the public docstrings (every name in fastbptt.__all__) pass
  as doctests, so the API reference shows output that the code really gives.
- The cells' public docstrings (fastbptt.cells.docs fills their shared sections): every
  placeholder filled, and each documents every argument the function takes.
"""
import doctest
import inspect
import pathlib
import re

import numpy as np
import pytest

import fastbptt
from fastbptt import reference
from fastbptt.cells import docs
from fastbptt.cells.spec import SPECS

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []
NOT_RUN = ("# fragment", "# train.py: mpiexec")


def _blocks():
    for page in PAGES:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            if not block.startswith(NOT_RUN):
                yield pytest.param(block, id=f"{page.relative_to(DOCS)}-{i}")


BLOCKS = list(_blocks())


def test_the_docs_have_runnable_examples():
    if not PAGES:
        pytest.skip("docs/ is not in this tree")
    assert len(BLOCKS) >= 8
    # every block either runs or says on its first line why it does not
    every = sum(len(re.findall(r"```python\n", p.read_text())) for p in PAGES)
    skipped = sum(len(re.findall(r"```python\n(?:# fragment|# train\.py: mpiexec)",
                                 p.read_text())) for p in PAGES)
    assert every == len(BLOCKS) + skipped


@pytest.mark.parametrize("block", BLOCKS)
def test_docs_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # examples that write files write them here
    exec(compile(block, "docs python block", "exec"), {})


def _public_objects():
    seen = set()
    for name in fastbptt.__all__:
        obj = getattr(fastbptt, name)
        if callable(obj) and id(obj) not in seen:
            seen.add(id(obj))
            yield name, obj


DOCTESTS = [pytest.param(test, id=name)
            for name, obj in _public_objects()
            for test in doctest.DocTestFinder(recurse=False).find(obj, f"fastbptt.{name}")
            if test.examples]


# The functions a new user meets first: their reference pages must show an example.
WITH_EXAMPLES = ["rnn_forward", "lstm_forward", "gru_forward", "softmax_cross_entropy",
                 "sigmoid_binary_cross_entropy", "mean_squared_error", "RNN", "LSTM", "GRU",
                 "Embedding", "SGD", "Momentum", "Adagrad", "Adam", "clip_grad_norm",
                 "TruncatedBPTT", "gradient_flow", "use_backend", "threads", "last_step"]


def test_the_api_reference_has_examples():
    names = {test.name for p in DOCTESTS for test in p.values}
    assert {f"fastbptt.{name}" for name in WITH_EXAMPLES} <= names


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_examples(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions(legacy=False):
        runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
    assert runner.failures == 0


def test_the_api_reference_lists_every_public_name():
    page = (DOCS / "api.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   (\w+)$", page, re.MULTILINE))
    missing = [name for name, _ in _public_objects() if name not in listed]
    assert not missing, missing


def test_every_public_docstring_has_numpydoc_sections():
    """The API reference is generated from these: a function that takes arguments
    documents them in a Parameters section, a class its Parameters or Attributes."""
    pytest.importorskip("numpydoc")      # the docs extra; CI runs this after installing it
    from numpydoc.docscrape import ClassDoc, FunctionDoc
    missing = []
    for name, obj in _public_objects():
        if inspect.isclass(obj):
            doc = ClassDoc(obj, config={"show_class_members": False})
            if not (doc["Parameters"] or doc["Attributes"]):
                missing.append(name)
        else:
            doc = FunctionDoc(obj)
            takes = [p for p in inspect.signature(obj).parameters]
            if takes and not doc["Parameters"]:
                missing.append(name)
        if not doc["Summary"]:
            missing.append(f"{name} (no summary)")
        if re.search(r"^\s*\{\w+\}\s*$", obj.__doc__, re.MULTILINE):
            missing.append(f"{name} (a shared block left unfilled)")
    assert not missing, missing


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
