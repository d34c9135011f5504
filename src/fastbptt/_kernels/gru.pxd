# The GRU's time loops as C entry points (gru.pyx), for the driver's fast path
# (cells/_fastpath.pyx): pointers to C-contiguous buffers, called by keyword.

from cython cimport floating


cdef void gru_forward_loop(const floating *X, const floating *bias, floating *gates,
                           floating *hbuf, floating *R, floating *scratch,
                           const floating *W_ih, const floating *W_hh,
                           const Py_ssize_t *lens, int T, int B, int I, int H,
                           bint batch_first, bint transposed_step, bint packed) noexcept nogil

cdef void gru_backward_loop(const floating *X, const floating *dh, const floating *hbuf,
                            const floating *gates, floating *carry, const floating *W_ih,
                            const floating *W_hh, const Py_ssize_t *lens, floating *dA,
                            floating *dX, floating *dW_ih, floating *dW_hh, floating *db,
                            floating *W_hhT, floating *scratch, int T, int B, int I, int H,
                            bint batch_first, bint transposed_step, bint packed) noexcept nogil
