"""fastbptt: compiled backpropagation through time for recurrent networks in NumPy.

The functions here run compiled kernels; :mod:`fastbptt.reference` holds their pure-NumPy
twins with the same names and signatures.
"""
from fastbptt import reference
from fastbptt._backend import get_backend, set_backend, use_backend
from fastbptt._config import show_config
from fastbptt._grads import GRUGrads, LSTMGrads, RNNGrads
from fastbptt._grads import HeadGrads
from fastbptt._threads import threads
from fastbptt._workspace import release_workspace, set_workspace_limit, workspace_bytes
from fastbptt.diagnostics import GradientFlow, gradient_flow, plot_gradient_flow
from fastbptt.embedding import Embedding, embedding_backward, embedding_forward
from fastbptt.gru import gru_backward, gru_forward
from fastbptt.layers import GRU, LSTM, RNN
from fastbptt.losses import (last_step, mean_squared_error, sigmoid_binary_cross_entropy,
                             softmax_cross_entropy)
from fastbptt.lstm import lstm_backward, lstm_forward
from fastbptt.optim import SGD, Adagrad, Adam, Momentum, clip_grad_norm, clip_grad_value
from fastbptt.rnn import rnn_backward, rnn_forward
from fastbptt.tbptt import TruncatedBPTT, TruncatedBPTTWindow

__version__ = "0.1.0"

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward",
           "gru_backward", "RNNGrads", "LSTMGrads", "GRUGrads", "RNN", "LSTM", "GRU",
           "reference", "__version__",
           "softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error",
           "last_step", "HeadGrads",
           "SGD", "Momentum", "Adagrad", "Adam", "clip_grad_norm", "clip_grad_value",
           "TruncatedBPTT", "TruncatedBPTTWindow",
           "GradientFlow", "gradient_flow", "plot_gradient_flow"]
__all__ += ["set_backend", "get_backend", "use_backend", "show_config", "threads",
            "release_workspace", "set_workspace_limit", "workspace_bytes"]
__all__ += ["Embedding", "embedding_forward", "embedding_backward"]
