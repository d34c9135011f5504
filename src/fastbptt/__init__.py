"""fastbptt: compiled backpropagation through time for recurrent networks in NumPy.

The functions here run compiled kernels; :mod:`fastbptt.reference` holds their pure-NumPy
twins with the same names and signatures.
"""
from fastbptt import reference
from fastbptt._grads import RNNGrads
from fastbptt.rnn import rnn_backward, rnn_forward

__version__ = "0.1.0"

__all__ = ["rnn_forward", "rnn_backward", "RNNGrads", "reference", "__version__"]
