"""Layer classes named and parameterised like torch.nn: RNN, LSTM, GRU (layers.py), on the
one stack/direction traversal with its explicit tape (stack.py)."""
from fastbptt.nn.layers import GRU, LAYERS, LSTM, RNN
from fastbptt.nn.stack import Tape
from fastbptt.nn.versions import ParametersChangedError, mark_modified

__all__ = ["RNN", "LSTM", "GRU", "LAYERS", "Tape", "ParametersChangedError", "mark_modified"]
