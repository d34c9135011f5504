"""Drop-in modules for recurrent models already written in NumPy: change one import and
the time loops run compiled, with the same functions, signatures and results.

- :mod:`fastbptt.compat.cs231n`: the layer functions of the Stanford CS231n assignments
  (``from fastbptt.compat import cs231n as layers``).
- :mod:`fastbptt.compat.minchar`: ``lossFun`` and ``sample`` of the min-char-rnn script,
  with the parameters as arguments or read from the script's globals
  (``lossFun = minchar.bind(globals())``).

Both take what the originals' NumPy takes (promotion, broadcasting, index shapes, list
caches); docs/guide/dropin.md, "Drop-in for NumPy models", lists what still differs and why.

Their sequence functions (cs231n's rnn/lstm_forward/backward, minchar's lossFun) call the
public cell functions, so they follow the backend switch: under
``fastbptt.use_backend("reference")`` they run on the pure-NumPy reference. The step
functions and the other layers are NumPy either way.
"""
from fastbptt.compat import cs231n, minchar

__all__ = ["cs231n", "minchar"]
