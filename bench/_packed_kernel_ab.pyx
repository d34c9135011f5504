# cython: language_level=3, boundscheck=False, wraparound=False
# One build of the packed per-step product (packed_gemm.h from the include path this
# module is compiled with) behind a timed loop, for bench/packed_kernel_ab.py, which
# compiles it twice (a base revision's headers and the worktree's) under two module
# names and times the two interleaved in one process.

from cython cimport floating
from libc.stdlib cimport free, malloc
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.stdlib cimport posix_memalign

cdef extern from "sys/mman.h" nogil:
    int madvise(void *addr, size_t length, int advice)
    int MADV_HUGEPAGE

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


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


def level():
    return fb_packed_level()


def run(const floating[:, ::1] W, bint transposed_w, const floating[:, :, ::1] A,
        floating[:, :, ::1] C, int steps, bint beta, bint huge=False):
    """(pack_ns, loop_ns): pack op(W) (W^T if transposed_w, else W) once, then `steps`
    products C[s] = beta C[s] + A[s] op(W), s cycling over the slots of A and C. huge: the
    packed buffer on 2 MiB pages (madvise MADV_HUGEPAGE), to see what the TLB costs."""
    cdef int slots = A.shape[0], M = A.shape[1], K = A.shape[2], N = C.shape[2]
    cdef size_t size
    if floating is float:
        size = fb_packed_size_f32(K, N)
    else:
        size = fb_packed_size_f64(K, N)
    cdef void *mem = NULL
    cdef size_t nbytes = size * sizeof(floating)
    if huge:
        nbytes = (nbytes + (2 << 20) - 1) & ~(<size_t> (2 << 20) - 1)
        if posix_memalign(&mem, 2 << 20, nbytes) != 0:
            raise MemoryError()
        madvise(mem, nbytes, MADV_HUGEPAGE)
    else:
        mem = malloc(nbytes)
    cdef floating *Wp = <floating *> mem
    if Wp == NULL:
        raise MemoryError()
    cdef int64_t t0, t1, t2
    cdef int s
    cdef Py_ssize_t sk = 1 if transposed_w else N
    cdef Py_ssize_t sn = K if transposed_w else 1
    with nogil:
        t0 = _now_ns()
        if floating is float:
            fb_pack_f32(&W[0, 0], K, N, sk, sn, Wp)
        else:
            fb_pack_f64(&W[0, 0], K, N, sk, sn, Wp)
        t1 = _now_ns()
        for s in range(steps):
            if floating is float:
                fb_packed_gemm_f32(M, N, K, &A[s % slots, 0, 0], K, Wp, beta,
                                   &C[s % slots, 0, 0], N)
            else:
                fb_packed_gemm_f64(M, N, K, &A[s % slots, 0, 0], K, Wp, beta,
                                   &C[s % slots, 0, 0], N)
        t2 = _now_ns()
    free(Wp)
    return t1 - t0, t2 - t1
