"""The README's examples run: every ```python block that imports fastbptt is executed as
a script (blocks without the import are fragments that continue an earlier example).
The README is the front page (the quick start and the drop-in line); the user guide's
examples are in docs/ and run in test_docs.py."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = [block for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
          if "import fastbptt" in block]


def test_readme_has_examples():
    assert len(BLOCKS) >= 2      # the quick start and the drop-in import


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # examples that write files write them here
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
