"""Layer classes named and parameterised like torch.nn: RNN, LSTM, GRU (layers.py), on the
one stack/direction traversal with its explicit tape (stack.py), the one-step cells
RNNCell, LSTMCell, GRUCell (cells.py), and Stepper, many single steps of a layer validated
once (stepper.py)."""
from fastbptt.nn.cells import CELL_CLASSES, GRUCell, LSTMCell, RNNCell, StepCache
from fastbptt.nn.layers import GRU, LAYERS, LSTM, RNN
from fastbptt.nn.stack import Tape
from fastbptt.nn.stepper import Stepper
from fastbptt.nn.versions import ParametersChangedError, mark_modified

__all__ = ["RNN", "LSTM", "GRU", "LAYERS", "Tape", "RNNCell", "LSTMCell", "GRUCell",
           "CELL_CLASSES", "StepCache", "ParametersChangedError", "mark_modified", "Stepper"]
