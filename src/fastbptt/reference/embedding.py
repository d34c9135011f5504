"""Embedding lookup in plain NumPy: the specification of fastbptt.nn.embedding.

For indices of any shape (...) into the V rows of weight (V, D), with N = indices.size
positions p:

    out[p] = weight[indices[p]]                                             (..., D)
    dW[v]  = sum over p with indices[p] = v of d_out[p]       (V, D), v != padding_idx
    dW[padding_idx] = 0                                   (torch.nn.Embedding's rule)

The gradient is np.add.at, the unbuffered scatter-add: a repeated index accumulates every
occurrence (dW[indices] += d_out would keep only one). Imports nothing compiled.
"""
import numpy as np

from fastbptt._embedding_args import EmbeddingCacheBase, check_backward_args, check_forward_args


class EmbeddingCache(EmbeddingCacheBase):
    """The cache of fastbptt.reference.embedding_forward (opaque)."""
    __slots__ = ()
    backend = "reference"


def embedding_forward(indices, weight, padding_idx=None):
    """out = weight[indices] (..., D), and the cache. See fastbptt.embedding_forward."""
    weight, args = check_forward_args(indices, weight, padding_idx)
    out = weight[args.indices].reshape(tuple(args.shape) + (args.embedding_dim,))
    return out, EmbeddingCache(args)


def embedding_backward(d_out, cache, add_to=None):
    """dW (V, D), or add_to with dW added in place. See fastbptt.embedding_backward."""
    a, d_out, add_to = check_backward_args(d_out, cache, add_to, EmbeddingCache,
                                           "fastbptt.reference.embedding_backward")
    counted = np.ones(a.indices.size, bool)
    if a.padding_idx is not None:
        counted = a.indices != a.padding_idx
    dW = np.zeros((a.num_embeddings, a.embedding_dim), a.dtype) if add_to is None else add_to
    np.add.at(dW, a.indices[counted], d_out[counted])
    return dW
