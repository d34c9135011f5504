"""The categorical draw of a softmax by inverse CDF: the reference twin of
fastbptt._kernels.step.InverseCDF, as NumPy calls on the caller's buffers.

    shift():  logits := logits + bias - max(logits + bias)       (V,), in place
    draw(u):  cdf = cumsum(weights), the first j with cdf[j] > u * cdf[V-1], at most V - 1
              (weights = logits after the caller's exp: p = softmax(logits + bias))

One uniform draw u per character gives the same index as rng.choice(V, p=p) with the same
u, for the same weights, which is how CharLM.sample draws.
"""
import numpy as np


class InverseCDF:
    """logits and bias: (V,) C-contiguous float64 arrays (the caller's, read and written in
    place); ValueError otherwise."""

    def __init__(self, logits, bias):
        # the compiled twin's conditions: C-contiguous float64 vectors of one length
        for name, a in (("logits", logits), ("bias", bias)):
            if not (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 1
                    and a.flags.c_contiguous):
                raise ValueError(f"{name} must be a C-contiguous float64 vector")
        if logits.shape != bias.shape or logits.size < 1:
            raise ValueError(f"logits and bias must have one length V >= 1, got "
                             f"{logits.shape[0]} and {bias.shape[0]}")
        self.logits, self.bias = logits, bias
        self.cdf = np.empty_like(logits)

    def shift(self):
        np.add(self.logits, self.bias, out=self.logits)
        np.subtract(self.logits, np.maximum.reduce(self.logits), out=self.logits)

    def draw(self, u):
        cdf = np.add.accumulate(self.logits, out=self.cdf)
        return min(int(cdf.searchsorted(u * cdf[-1], side="right")), len(cdf) - 1)
