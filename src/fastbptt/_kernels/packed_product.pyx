# Python entry points of the packed per-step product (packed_gemm.h), for the tests that
# hold it to NumPy in every instruction-set instance, and for the timing harness
# bench/per_step_gemm_options.py. The kernels use packed_gemm.pxd directly.

from cython cimport floating
from libc.stdlib cimport free, malloc

from fastbptt._kernels.packed_gemm cimport (fb_packed_cpu_level, fb_packed_level,
                                            fb_packed_set_level, pack, packed_gemm,
                                            packed_size)


def cpu_level():
    """The instance this CPU can run: 0 portable, 1 AVX2+FMA, 2 AVX-512."""
    return fb_packed_cpu_level()


def level():
    """The instance this module runs now (see set_level)."""
    return fb_packed_level()


def set_level(int level):
    """Run the instance `level` from now on in this module (clamped to cpu_level()), so
    that the tests reach every instance on one machine; returns the level set. The
    kernel modules keep their own choice, the CPU's."""
    return fb_packed_set_level(level)


def product_py(const floating[:, ::1] A, const floating[:, ::1] W, bint transposed_w,
               bint beta, floating[:, ::1] C):
    """C = beta C + A W^T (transposed_w: the forward's h W_hh^T) or A W (the backward's
    dA W_hh), through the packed form of W; returns C. Shapes are checked here."""
    cdef int M = A.shape[0], K = A.shape[1]
    cdef int N = W.shape[0] if transposed_w else W.shape[1]
    if (W.shape[1] if transposed_w else W.shape[0]) != K or C.shape[0] != M \
            or C.shape[1] != N:
        raise ValueError("product_py: shapes do not agree")
    if M == 0 or N == 0:
        return C.base
    cdef floating *Wp = <floating *> malloc(max(1, packed_size(&C[0, 0], K, N))
                                            * sizeof(floating))
    if Wp == NULL:
        raise MemoryError()
    cdef const floating *a = &A[0, 0] if K else NULL
    cdef const floating *w = &W[0, 0] if K else NULL
    try:
        with nogil:
            # op(W) (K x N): W^T has element (k, n) at W[n, k]; W at W[k, n]
            if transposed_w:
                pack(w, K, N, 1, K, Wp)
            else:
                pack(w, K, N, N, 1, Wp)
            packed_gemm(M, N, K, a, K, Wp, beta, &C[0, 0], N)
    finally:
        free(Wp)
    return C.base
