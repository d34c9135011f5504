"""fastbptt: compiled backpropagation through time for recurrent networks in NumPy.

The functions here run compiled kernels; :mod:`fastbptt.reference` holds their pure-NumPy
twins with the same names and signatures.
"""
from fastbptt import reference
from fastbptt._config import show_config
from fastbptt._grads import GRUGrads, LSTMGrads, RNNGrads
from fastbptt._threads import threads
from fastbptt.gru import gru_backward, gru_forward
from fastbptt.layers import GRU, LSTM, RNN
from fastbptt.lstm import lstm_backward, lstm_forward
from fastbptt.rnn import rnn_backward, rnn_forward

__version__ = "0.1.0"

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward",
           "gru_backward", "RNNGrads", "LSTMGrads", "GRUGrads", "RNN", "LSTM", "GRU",
           "reference", "__version__", "show_config", "threads"]
