# The per-step product against a W_hh packed once per call (the why, the packed layout
# and the instruction-set instances are in packed_gemm.h).

from cython cimport floating

cdef extern from "packed_gemm.h" nogil:
    size_t fb_packed_size_f32(int K, int N)
    size_t fb_packed_size_f64(int K, int N)
    void fb_pack_f32(const float *src, int K, int N, Py_ssize_t sk, Py_ssize_t sn,
                     float *dst)
    void fb_pack_f64(const double *src, int K, int N, Py_ssize_t sk, Py_ssize_t sn,
                     double *dst)
    void fb_packed_gemm_f32(int M, int N, int K, const float *A, Py_ssize_t lda,
                            const float *Bp, int beta, float *C, Py_ssize_t ldc)
    void fb_packed_gemm_f64(int M, int N, int K, const double *A, Py_ssize_t lda,
                            const double *Bp, int beta, double *C, Py_ssize_t ldc)
    int fb_packed_level()
    int fb_packed_cpu_level()
    int fb_packed_set_level(int level)


cdef inline size_t packed_size(floating *like, int K, int N) noexcept nogil:
    """Elements of the packed form of a K x N operand (like only selects the type)."""
    if floating is float:
        return fb_packed_size_f32(K, N)
    else:
        return fb_packed_size_f64(K, N)


cdef inline void pack(const floating *src, int K, int N, Py_ssize_t sk, Py_ssize_t sn,
                      floating *dst) noexcept nogil:
    """dst = the K x N operand with element (k, n) at src[k sk + n sn], in panels."""
    if floating is float:
        fb_pack_f32(src, K, N, sk, sn, dst)
    else:
        fb_pack_f64(src, K, N, sk, sn, dst)


cdef inline void packed_gemm(int M, int N, int K, const floating *A, Py_ssize_t lda,
                             const floating *Bp, bint beta, floating *C,
                             Py_ssize_t ldc) noexcept nogil:
    """C (M x N) = beta C + A (M x K) Bp (K x N, packed), beta 0 or 1."""
    if floating is float:
        fb_packed_gemm_f32(M, N, K, A, lda, Bp, beta, C, ldc)
    else:
        fb_packed_gemm_f64(M, N, K, A, lda, Bp, beta, C, ldc)
