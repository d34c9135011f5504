"""The functional core: one CellSpec per recurrent cell (spec.py), the one compiled
driver (driver.py), the per-cell adapters (rnn.py, lstm.py, gru.py), argument checks,
gradient records, the recycled workspace and checkpointing.

Nothing is imported here, so that fastbptt.reference can use the pure-Python modules of
this package (spec, args, grads, checkpoint) without loading a compiled kernel.
"""
