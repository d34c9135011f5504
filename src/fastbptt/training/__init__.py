"""Training on top of the cells and layers: optimizers and gradient clipping (optim.py),
truncated BPTT (tbptt.py), gradient-flow diagnostics (diagnostics.py), checkpoints of
training runs: checked paths, atomic writes, clean read errors, deferred Ctrl-C
(checkpoint.py)."""
