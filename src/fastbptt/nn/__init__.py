"""Layer classes named and parameterised like torch.nn: RNN, LSTM, GRU (layers.py)."""
from fastbptt.nn.layers import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU"]
