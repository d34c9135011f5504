"""Fused output heads and their losses: `heads.py` (compiled), `args.py` (their checks),
`grads.py` (the HeadGrads record). The public functions are imported on first use, so that
fastbptt.reference.losses can use the checks without loading a compiled kernel."""
import importlib

__all__ = ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error",
           "last_step", "HeadGrads"]


def __getattr__(name):
    if name not in __all__:
        raise AttributeError(f"module 'fastbptt.losses' has no attribute {name!r}")
    module = "fastbptt.losses.grads" if name == "HeadGrads" else "fastbptt.losses.heads"
    return getattr(importlib.import_module(module), name)
