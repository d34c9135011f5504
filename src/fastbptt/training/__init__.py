"""Training on top of the cells and layers: optimizers and gradient clipping (optim.py),
truncated BPTT (tbptt.py), gradient-flow diagnostics (diagnostics.py)."""
