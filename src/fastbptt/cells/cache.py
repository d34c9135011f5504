"""What every cell's cache has in common, compiled, reference or checkpointed: which cell
(spec) and which backend made it, and the final states a caller may read (h_n, and c_n
for the LSTM). Backward goes to the backend its cache names (runtime.backend.dispatch).
"""


class CellCache:
    """Base of the caches forward functions return. Opaque to callers but for h_n (and
    c_n). Subclasses set `spec`, `backend` and `final_states()`."""
    __slots__ = ()
    backend = None   # "compiled" or "reference"

    def final_states(self):
        """The final states in spec.states order, (h_n,) or (h_n, c_n), not copied."""
        raise NotImplementedError

    @property
    def h_n(self):
        """The final hidden state (B, H), a new array: each sequence's state at its own
        last step."""
        return self.final_states()[0].copy()

    @property
    def c_n(self):
        """The final cell state (B, H) of an LSTM, a new array."""
        if "c" not in self.spec.states:
            raise AttributeError(f"c_n is for lstm only, not {self.spec.name}")
        return self.final_states()[1].copy()
