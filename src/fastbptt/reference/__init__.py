"""Pure-NumPy twins of every compiled function: the executable specification.

Same names, signatures and semantics as the functions in :mod:`fastbptt`; written for
clarity (one step at a time, the textbook equations), not speed. The tests hold the
compiled functions to these.
"""
from fastbptt.reference.rnn import rnn_backward, rnn_forward

__all__ = ["rnn_forward", "rnn_backward"]
