"""Drop-in modules for recurrent models already written in NumPy: change one import and
the time loops run compiled, with the same functions, signatures and results.

- :mod:`fastbptt.compat.cs231n`: the layer functions of the Stanford CS231n assignments
  (``from fastbptt.compat import cs231n as layers``).
- :mod:`fastbptt.compat.minchar`: ``lossFun`` and ``sample`` of the min-char-rnn script.

Both call the public cell functions, so they follow the backend switch
(``fastbptt.use_backend("reference")`` runs them on the pure-NumPy reference).
"""
from fastbptt.compat import cs231n, minchar

__all__ = ["cs231n", "minchar"]
