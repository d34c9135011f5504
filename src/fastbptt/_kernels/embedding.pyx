# The weight gradient of an embedding lookup: a scatter-add of gradient rows into the rows
# of the words they came from, over repeated indices.
#
#   out[indices[n], :] += rows[n, :]      for n < N with indices[n] != skip
#   out (V, D), rows (N, D), indices (N,) in [0, V)
#
# One pass over the N rows in order (so the sums are formed in the order of the indices,
# as np.add.at forms them, and a repeated index accumulates every occurrence); each row is
# one vectorised add of D elements (vmath.h's accumulate). The cost is O(N D) whatever V:
# none of the V x N one-hot product and none of np.add.at's per-element dispatch.
#
# The wrapper in fastbptt.nn.embedding validates every argument (indices in range, shapes,
# dtypes, out C-contiguous and writeable and not overlapping rows) and allocates or zeroes
# `out`; nothing here checks, allocates, touches a Python object or holds the GIL.

from cython cimport floating

from fastbptt._kernels.activations cimport accumulate


def scatter_add_rows(const Py_ssize_t[::1] indices, const floating[:, ::1] rows,
                     floating[:, ::1] out, Py_ssize_t skip):
    """out[indices[n]] += rows[n] for every n whose index is not `skip` (-1: none).

    indices (N,) in [0, V); rows (N, D); out (V, D), written in place. N, D >= 1.
    """
    cdef Py_ssize_t N = indices.shape[0], D = rows.shape[1], n, row
    cdef const floating *src = &rows[0, 0]
    cdef floating *dst = &out[0, 0]
    with nogil:
        for n in range(N):
            row = indices[n]
            if row == skip:
                continue
            # out[row, :] += rows[n, :]
            accumulate(dst + row * D, src + n * D, D)
