"""Pure-NumPy twins of every compiled function: the executable specification.

Same names, signatures and semantics as the functions in :mod:`fastbptt`; written for
clarity (one step at a time, the textbook equations), not speed. The tests hold the
compiled functions to these.
"""
from fastbptt.reference.embedding import embedding_backward, embedding_forward
from fastbptt.reference.gru import gru_backward, gru_forward
from fastbptt.reference.losses import (
                                       last_step,
                                       mean_squared_error,
                                       sigmoid_binary_cross_entropy,
                                       softmax_cross_entropy,
)
from fastbptt.reference.lstm import lstm_backward, lstm_forward
from fastbptt.reference.rnn import rnn_backward, rnn_forward

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward",
           "gru_backward"]
__all__ += ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error",
            "last_step"]
__all__ += ["embedding_forward", "embedding_backward"]
