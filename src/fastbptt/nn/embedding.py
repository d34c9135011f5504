"""Embedding lookup, compiled: the wrappers around fastbptt._kernels.embedding, and the
Embedding layer.

Same signatures and semantics as fastbptt.reference.embedding (the specification). For
indices of any shape (...) into the V rows of weight (V, D):

    out = weight[indices]                                    (..., D)
    dW[v] = sum of d_out[p] over the positions p with indices[p] = v      (V, D)

with no gradient for the row padding_idx (torch.nn.Embedding's rule). The lookup is one
np.take (nothing to compile); the gradient is the hot part, a scatter-add over repeated
indices, and runs in the kernel: O(N D) whatever V, against np.add.at's per-element
dispatch (bench/embedding_backward.py).

Tied input and output weights (Press and Wolf 2017): the fused head takes the embedding
matrix as its W (the head's input size is then D), and the weight's gradient is the sum
of the head's and the lookup's. add_to= makes that one line, without a second (V, D)
array:

    x = emb.forward(tokens)                                  # (T, B, D)
    out, _ = lstm.forward(x)                                 # (T, B, D): hidden_size = D
    loss, g = fastbptt.softmax_cross_entropy(out, emb.weight, b, targets)
    dx, grads = lstm.backward(g.dh)
    dW = emb.backward(dx, add_to=g.dW)["weight"]             # is g.dW, now the total
"""
import numpy as np

from fastbptt._embedding_args import (
    EmbeddingCacheBase,
    check_backward_args,
    check_forward_args,
    check_padding_idx,
    check_size,
)
from fastbptt._kernels import embedding as _kernel
from fastbptt.cells import workspace as _workspace
from fastbptt.runtime.backend import BACKENDS, dispatch, implementation


class EmbeddingCache(EmbeddingCacheBase):
    """The cache of fastbptt.embedding_forward (opaque; for embedding_backward)."""
    __slots__ = ()
    backend = "compiled"


@dispatch("embedding_forward")
def embedding_forward(indices, weight, padding_idx=None):
    """Look up rows of an embedding matrix: ``out = weight[indices]``.

    Parameters
    ----------
    indices : array_like of int
        Any shape (...), values in [0, V); a list or a Python int too.
    weight : ndarray, shape (V, D)
        float32 or float64.
    padding_idx : int or None
        A row in [-V, V) that gets no gradient.

    Returns
    -------
    out : ndarray, shape (..., D)
        A new array of weight's dtype.
    cache : object
        For :func:`embedding_backward`; it keeps a copy of the indices, not the weight.

    Raises
    ------
    ValueError
        Indices out of range or negative, or a padding_idx out of range.
    TypeError
        Float or bool indices, or a weight of another dtype.
    """
    weight, args = check_forward_args(indices, weight, padding_idx)
    out = np.take(weight, args.indices, axis=0)
    return out.reshape(tuple(args.shape) + (args.embedding_dim,)), EmbeddingCache(args)


@dispatch("embedding_backward")
def embedding_backward(d_out, cache, add_to=None):
    """The weight gradient of an embedding lookup: d_out's rows summed into the rows their
    indices name, none into padding_idx.

    A compiled scatter-add over repeated indices, O(N D) whatever V.

    Parameters
    ----------
    d_out : ndarray, shape (..., D)
        dL/dout, shaped like the forward's ``out`` and of its dtype.
    cache : object
        What :func:`embedding_forward` returned.
    add_to : ndarray, shape (V, D), or None
        None: a new dW is returned. A C-contiguous, writable array of the dtype (a gradient
        that other uses of the weight already produced, say the tied head's dW): the
        gradient is added into it in place and ``add_to`` is returned.

    Returns
    -------
    dW : ndarray, shape (V, D)

    Raises
    ------
    ValueError, TypeError
        ``d_out`` or ``add_to`` of the wrong shape or dtype, or a cache from elsewhere.
    """
    a, d_out, add_to = check_backward_args(d_out, cache, add_to, EmbeddingCache,
                                           "fastbptt.embedding_backward")
    V, D = a.num_embeddings, a.embedding_dim
    if add_to is None:
        # A recycled buffer (fastbptt._workspace): a fresh (V, D) array is fresh pages to
        # fault in on every training step, which costs more than the scatter-add itself.
        dW = _workspace.empty((V, D), a.dtype)
        dW.fill(0)
    else:
        dW = add_to
    if a.indices.size and D:
        skip = -1 if a.padding_idx is None else a.padding_idx
        _kernel.scatter_add_rows(a.indices, d_out, dW, skip)
    return dW


class Embedding:
    """A lookup table of num_embeddings vectors of size embedding_dim, like torch.nn.Embedding.

    Parameters
    ----------
    num_embeddings : int
        V, the vocabulary size.
    embedding_dim : int
        D, the size of each vector.
    padding_idx : int or None
        A row in [-V, V) that starts at zero and never gets a gradient.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
    seed : int, numpy.random.Generator or None
        The weight starts N(0, 1), as torch's does.
    backend : {None, "compiled", "reference"}, default None
        None follows :func:`fastbptt.set_backend`; a name pins this layer.

    Attributes
    ----------
    params : dict
        ``{"weight": (V, D) ndarray}``, torch's key; ``layer.weight`` is the same array.

    Notes
    -----
    ``forward(indices)`` returns ``weight[indices]``, shape ``indices.shape + (D,)``;
    ``backward(d_out, add_to=None)`` returns ``{"weight": dW}``, the row ``padding_idx``
    getting none (``add_to`` sums into a given (V, D) array, say a tied head's dW).
    ``state_dict()`` / ``load_state_dict()`` round-trip with torch's.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbptt
    >>> emb = fastbptt.Embedding(10, 4, padding_idx=0, seed=0)
    >>> out = emb.forward(np.array([[1, 0], [3, 3]]))
    >>> out.shape
    (2, 2, 4)
    >>> dW = emb.backward(np.ones_like(out))["weight"]
    >>> dW[3], dW[0]                        # row 3 used twice; the padding row gets nothing
    (array([2., 2., 2., 2.], dtype=float32), array([0., 0., 0., 0.], dtype=float32))
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float32,
                 seed=None, backend=None):
        self.num_embeddings = check_size("num_embeddings", num_embeddings)
        self.embedding_dim = check_size("embedding_dim", embedding_dim)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        self.backend = backend
        rng = np.random.default_rng(seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.params = {"weight": weight}
        self._cache = None

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, value):
        if value is not None and value not in BACKENDS:
            raise ValueError(f"backend must be None (follow fastbptt.set_backend), "
                             f"'compiled' or 'reference', got {value!r}")
        self._backend = value

    @property
    def weight(self):
        """The (V, D) weight, params["weight"] itself (not a copy)."""
        return self.params["weight"]

    def _function(self, name):
        if self.backend is None:
            return embedding_forward if name == "embedding_forward" else embedding_backward
        return implementation(name, self.backend)

    def forward(self, indices):
        """weight[indices], (..., D) for indices of any shape (...); keeps what backward
        needs."""
        out, self._cache = self._function("embedding_forward")(
            indices, self.params["weight"], self.padding_idx)
        return out

    def backward(self, d_out, add_to=None):
        """{"weight": dW} for d_out = dL/d(out) of the last forward (see
        embedding_backward for add_to, the tied-weights form)."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward call first")
        backward = embedding_backward if self.backend is None else \
            implementation("embedding_backward", self.backend)
        return {"weight": backward(d_out, self._cache, add_to=add_to)}

    def state_dict(self):
        """{"weight": a copy}, torch.nn.Embedding's state dict."""
        return {"weight": self.params["weight"].copy()}

    def load_state_dict(self, state_dict):
        """Replace the weight from {"weight": (V, D)} (a NumPy array or a torch CPU
        tensor), copied and converted to the layer's dtype. The weight becomes a new
        array: re-tie anything that shared the old one."""
        keys = set(state_dict)
        if keys != {"weight"}:
            raise KeyError(f"state_dict keys do not match this Embedding: missing "
                           f"{sorted({'weight'} - keys)}, unexpected {sorted(keys - {'weight'})}")
        value = np.asarray(state_dict["weight"])
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"state_dict['weight'] must be a float array, got {value.dtype}")
        shape = (self.num_embeddings, self.embedding_dim)
        if value.shape != shape:
            raise ValueError(f"state_dict['weight'] must have shape {shape}, got "
                             f"{value.shape}")
        self.params = {"weight": np.array(value, dtype=self.dtype, order="C")}

    def __repr__(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return (f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, "
                f"dtype={self.dtype.name})")
