# The LSTM's time loops as C entry points (lstm.pyx), for the driver's fast path
# (cells/_fastpath.pyx): pointers to C-contiguous buffers, called by keyword.

from cython cimport floating


cdef void lstm_forward_loop(const floating *X, const floating *bias, floating *gates,
                            floating *hbuf, floating *cbuf, floating *scratch,
                            const floating *W_ih, const floating *W_hh,
                            const Py_ssize_t *lens, int T, int B, int I, int H,
                            bint batch_first, bint transposed_step, bint packed) noexcept nogil

cdef void lstm_backward_loop(const floating *X, const floating *dh, const floating *hbuf,
                             const floating *cbuf, const floating *gates, floating *carry_h,
                             floating *carry_c, const floating *W_ih, const floating *W_hh,
                             const Py_ssize_t *lens, floating *dA, floating *dX,
                             floating *dW_ih, floating *dW_hh, floating *db,
                             floating *W_hhT, floating *scratch, floating *hold, int T,
                             int B, int I, int H, bint batch_first,
                             bint transposed_step, bint packed) noexcept nogil
