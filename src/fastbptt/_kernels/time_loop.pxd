# What the cells' reverse time loops share besides their matrix products
# (recurrent_gemm.pxd): the start of backward and the rows that a step skips. Inlined
# into rnn.pyx, lstm.pyx and gru.pyx; the row order is recurrent_gemm.pxd's.

from cython cimport floating
from libc.string cimport memset

from fastbptt._kernels.transpose cimport transpose


cdef inline void begin_backward(floating *db, Py_ssize_t n_db, const floating *W_hh,
                                floating *W_hhT, int GH, int H,
                                bint transposed) noexcept nogil:
    """db (n_db) = 0, the column sums of dA start empty; with transposed,
    W_hhT = W_hh^T: (H x GH), the operand of the transposed per-step products."""
    memset(db, 0, n_db * sizeof(floating))
    if transposed:
        transpose(W_hh, GH, H, H, W_hhT, GH, False)


cdef inline bint ended_row(const Py_ssize_t *lengths, Py_ssize_t t, Py_ssize_t b,
                           floating *dA_row, Py_ssize_t n) noexcept nogil:
    """Whether sequence b has ended by step t (lengths not NULL and t >= lengths[b]); then
    its step is the identity: dA_row (n) = 0, so that nothing past its length reaches a
    gradient, and the caller leaves its carries as they are."""
    if lengths != NULL and t >= lengths[b]:
        memset(dA_row, 0, n * sizeof(floating))
        return True
    return False


cdef inline const floating *row_or_null(const floating *rows, Py_ssize_t row,
                                        Py_ssize_t n) noexcept nogil:
    """Row `row` (n long) of rows, or NULL when rows is NULL (dh not given)."""
    return rows + row * n if rows != NULL else NULL
