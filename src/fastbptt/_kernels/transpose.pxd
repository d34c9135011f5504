# Small out-of-place transposes for the per-step GEMMs that run in transposed form
# (the why and the tiling are in transpose.h).

from cython cimport floating

cdef extern from "transpose.h" nogil:
    void fb_transpose_f32(const float *src, Py_ssize_t rows, Py_ssize_t cols,
                          Py_ssize_t ld_src, float *dst, Py_ssize_t ld_dst, int accumulate)
    void fb_transpose_f64(const double *src, Py_ssize_t rows, Py_ssize_t cols,
                          Py_ssize_t ld_src, double *dst, Py_ssize_t ld_dst, int accumulate)


cdef inline void transpose(const floating *src, Py_ssize_t rows, Py_ssize_t cols,
                           Py_ssize_t ld_src, floating *dst, Py_ssize_t ld_dst,
                           bint accumulate) noexcept nogil:
    """dst (cols x rows) = src (rows x cols)^T, or += when accumulate; row-major, rows
    ld_src and ld_dst elements apart."""
    if floating is float:
        fb_transpose_f32(src, rows, cols, ld_src, dst, ld_dst, accumulate)
    else:
        fb_transpose_f64(src, rows, cols, ld_src, dst, ld_dst, accumulate)
