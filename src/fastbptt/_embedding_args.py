"""Argument checks of the embedding lookup, shared by the compiled wrappers
(fastbptt.nn.embedding) and the reference (fastbptt.reference.embedding).

Every check runs here, before any compiled code: the scatter-add kernel trusts what it
gets (no bounds checks). The forward problem, flattened to N = indices.size positions:

    indices (...) ints in [0, V)      weight (V, D)      out = weight[indices]  (..., D)

and the backward problem: d_out (..., D) shaped like out, dW (V, D) with
dW[v] = sum of d_out[p] over the positions p with indices[p] = v (none for v = padding_idx).
"""
from typing import NamedTuple, Optional

import numpy as np

from fastbptt.runtime.validation import FLOAT_DTYPES, as_array

# Positions and output elements a call may have: the sizes of everything the lookup and
# its gradient allocate are checked against this before any array is scanned or copied
# (a broadcast view of a few bytes can stand for terabytes).
MAX_ELEMENTS = 2**31 - 1


class EmbeddingArgs(NamedTuple):
    """A validated lookup: what backward needs, and nothing that the caller can change."""
    indices: np.ndarray             # (N,) intp, a private copy, every value in [0, V)
    shape: tuple                    # the indices' shape; out is shape + (D,)
    num_embeddings: int             # V
    embedding_dim: int              # D
    dtype: np.dtype                 # the weight's, float32 or float64
    padding_idx: Optional[int]      # in [0, V) (a negative one made positive), or None


class EmbeddingCacheBase:
    """The cache of one embedding_forward call: its EmbeddingArgs (`args`). Opaque: pass it
    to embedding_backward. Each implementation subclasses it, so that backward finds its
    own (fastbptt.runtime.backend dispatches on the backend a cache names)."""
    __slots__ = ("args",)

    def __init__(self, args):
        self.args = args

    def __repr__(self):
        a = self.args
        return (f"{type(self).__module__}.{type(self).__name__}(shape={a.shape}, "
                f"num_embeddings={a.num_embeddings}, embedding_dim={a.embedding_dim}, "
                f"dtype={a.dtype.name}, padding_idx={a.padding_idx})")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_size(name, value, low=0):
    """An int >= low (num_embeddings, embedding_dim), else TypeError/ValueError."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_padding_idx(padding_idx, V):
    """torch's rule: None, or an int in [-V, V) (negative counts from the end); returned
    in [0, V) or None."""
    if padding_idx is None:
        return None
    if not _is_int(padding_idx):
        raise TypeError(f"padding_idx must be an int or None, got "
                        f"{type(padding_idx).__name__}")
    if not -V <= padding_idx < V:
        raise ValueError(f"padding_idx must lie in [-num_embeddings, num_embeddings) = "
                         f"[{-V}, {V}), got {padding_idx}")
    return int(padding_idx) % V


def check_weight(weight):
    """weight as a (V, D) float32/float64 ndarray (not copied)."""
    weight = as_array("weight", weight)
    if weight.dtype not in FLOAT_DTYPES:
        raise TypeError(f"weight must have dtype float32 or float64, got {weight.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D, (num_embeddings, embedding_dim), got "
                         f"{weight.ndim}-D with shape {weight.shape}")
    return weight


def check_indices(indices, V, D):
    """indices (any shape) as a private (N,) intp copy with every value in [0, V), and
    their shape. TypeError for a non-integer dtype (float, bool, ...); ValueError naming
    the first index out of range."""
    indices = as_array("indices", indices)
    if indices.dtype == np.bool_ or indices.dtype.kind not in "iu":
        raise TypeError(f"indices must have an integer dtype (indices into the {V} rows "
                        f"of the weight), got {indices.dtype}")
    N = indices.size
    if N > MAX_ELEMENTS or N * D > MAX_ELEMENTS:
        raise ValueError(f"indices of shape {indices.shape} with embedding_dim {D} give "
                         f"{N * D} output elements, more than the limit {MAX_ELEMENTS}; "
                         f"look up fewer positions per call")
    if N and (indices.min() < 0 or indices.max() >= V):
        flat = indices.reshape(-1)
        first = int(np.flatnonzero((flat < 0) | (flat >= V))[0])
        where = tuple(int(i) for i in np.unravel_index(first, indices.shape))
        raise ValueError(f"indices must lie in [0, num_embeddings) = [0, {V}), got "
                         f"{int(flat[first])} at position {where}")
    # np.array copies: the cache never sees later writes into the caller's array
    return np.array(indices, dtype=np.intp, order="C").reshape(-1), indices.shape


def check_forward_args(indices, weight, padding_idx):
    """Validate embedding_forward(indices, weight, padding_idx); returns (weight, args)."""
    weight = check_weight(weight)
    V, D = weight.shape
    padding_idx = check_padding_idx(padding_idx, V)
    flat, shape = check_indices(indices, V, D)
    return weight, EmbeddingArgs(flat, shape, V, D, weight.dtype, padding_idx)


def check_backward_args(d_out, cache, add_to, cache_type, function):
    """Validate embedding_backward(d_out, cache, add_to); returns (args, d_out (N, D)
    C-contiguous, add_to or None)."""
    if not isinstance(cache, cache_type):
        raise TypeError(f"cache must be the cache that the matching embedding_forward "
                        f"returned, got {type(cache).__name__} (in {function})")
    a = cache.args
    expected = tuple(a.shape) + (a.embedding_dim,)
    d_out = as_array("d_out", d_out)
    if d_out.dtype not in FLOAT_DTYPES:
        raise TypeError(f"d_out must have dtype float32 or float64, got {d_out.dtype}")
    if d_out.dtype != a.dtype:
        raise TypeError(f"mixed dtypes: d_out is {d_out.dtype} but the weight of the "
                        f"forward call was {a.dtype}; convert them to one dtype")
    if d_out.shape != expected:
        raise ValueError(f"d_out must have the output's shape indices.shape + "
                         f"(embedding_dim,) = {expected}, got {d_out.shape}")
    if add_to is not None:
        if not isinstance(add_to, np.ndarray):
            raise TypeError(f"add_to must be a NumPy array (the gradient to add into, in "
                            f"place) or None, got {type(add_to).__name__}")
        if add_to.dtype != a.dtype:
            raise TypeError(f"add_to must have the weight's dtype {a.dtype}, got "
                            f"{add_to.dtype}")
        if add_to.shape != (a.num_embeddings, a.embedding_dim):
            raise ValueError(f"add_to must have the weight's shape (num_embeddings, "
                             f"embedding_dim) = {(a.num_embeddings, a.embedding_dim)}, "
                             f"got {add_to.shape}")
        if not (add_to.flags.c_contiguous and add_to.flags.writeable):
            raise ValueError("add_to must be a C-contiguous, writeable array: the gradient "
                             "is added into it in place")
    d_out = np.ascontiguousarray(d_out).reshape(a.indices.size, a.embedding_dim)
    if add_to is not None and np.may_share_memory(d_out, add_to):
        d_out = d_out.copy()   # never read what this call writes
    return a, d_out, add_to
