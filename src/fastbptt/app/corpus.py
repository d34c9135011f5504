"""The demo's default training text, shipped inside the package.

`data/corpus.txt` is a set of short stories and workshop notes written for this project
(about 29 KB of plain English in ASCII, no third-party text), small enough to ship and
large enough for a character-level language model to learn words and sentences from in
about a minute on two cores.
"""
from importlib import resources


def load_corpus():
    """The embedded corpus as one str (ASCII, paragraphs separated by blank lines)."""
    return resources.files("fastbptt.app").joinpath("data", "corpus.txt").read_text("ascii")
