# The LSTM cell's fused element-wise passes (lstm_cell.h, where the math is), declared
# once for the kernels that cimport them (lstmp.pyx), with their fused-type dispatch.

from cython cimport floating

cdef extern from "lstm_cell.h" nogil:
    # gates (4H): pre-activations in, activated gates out; c, h (H) the new state.
    void fb_lstm_forward_f32(float *gates, const float *bias, const float *c_prev,
                             float *c, float *h, Py_ssize_t H)
    void fb_lstm_forward_f64(double *gates, const double *bias, const double *c_prev,
                             double *c, double *h, Py_ssize_t H)
    # dA (4H) from the gates, the states and dh (+ dh_out, may be NULL); dc (H) holds
    # dL/dc_t on entry and dL/dc_{t-1} on exit; db (4H) += dA.
    void fb_lstm_backward_f32(const float *gates, const float *c_prev, const float *c,
                              const float *dh, const float *dh_out, float *dc, float *dA,
                              float *db, Py_ssize_t H)
    void fb_lstm_backward_f64(const double *gates, const double *c_prev, const double *c,
                              const double *dh, const double *dh_out, double *dc,
                              double *dA, double *db, Py_ssize_t H)


cdef inline void lstm_cell_forward(floating *gates, const floating *bias,
                                   const floating *c_prev, floating *c, floating *h,
                                   Py_ssize_t H) noexcept nogil:
    if floating is float:
        fb_lstm_forward_f32(gates, bias, c_prev, c, h, H)
    else:
        fb_lstm_forward_f64(gates, bias, c_prev, c, h, H)


cdef inline void lstm_cell_backward(const floating *gates, const floating *c_prev,
                                    const floating *c, const floating *dh,
                                    const floating *dh_out, floating *dc, floating *dA,
                                    floating *db, Py_ssize_t H) noexcept nogil:
    if floating is float:
        fb_lstm_backward_f32(gates, c_prev, c, dh, dh_out, dc, dA, db, H)
    else:
        fb_lstm_backward_f64(gates, c_prev, c, dh, dh_out, dc, dA, db, H)
