# The per-step product in each tried form, as a T-step loop timed in C (compiled at run
# time by bench/per_step_gemm_options.py, which documents it). Forward: P_t (B x GH) +=
# h (B x H) W_hh^T; backward: carry (B x H) = dA_t (B x GH) W_hh (GH x H). Each loop takes
# its operands from a ring of SLOTS steps, so that consecutive steps read and write
# different memory, as a kernel's steps do.
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True

from cython cimport floating
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fastbptt._kernels.packed_gemm cimport pack, packed_gemm, packed_size
from fastbptt._kernels.recurrent_gemm cimport recurrent_product, recurrent_product_grad

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *tp)
    enum: CLOCK_MONOTONIC

cdef extern from "<dlfcn.h>" nogil:
    void *dlopen(const char *filename, int flag)
    void *dlsym(void *handle, const char *symbol)
    char *dlerror()
    enum: RTLD_NOW
    enum: RTLD_LOCAL

IF HAVE_BLIS:
    from blis cimport cy as blis_cy

cdef enum:
    SLOTS = 8
    RowMajor = 101
    CblasNoTrans = 111
    CblasTrans = 112
    CblasPacked = 151
    CblasBMatrix = 162

# MKL's CBLAS, LP64 (MKL_INT = int), resolved by load_mkl
ctypedef size_t (*pack_size_t)(int, int, int, int) noexcept nogil
ctypedef void (*spack_t)(int, int, int, int, int, int, float, const float *, int,
                         float *) noexcept nogil
ctypedef void (*dpack_t)(int, int, int, int, int, int, double, const double *, int,
                         double *) noexcept nogil
ctypedef void (*scompute_t)(int, int, int, int, int, int, const float *, int, const float *,
                            int, float, float *, int) noexcept nogil
ctypedef void (*dcompute_t)(int, int, int, int, int, int, const double *, int,
                            const double *, int, double, double *, int) noexcept nogil
ctypedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int) noexcept nogil
ctypedef void (*dgemm_t)(int, int, int, int, int, int, double, const double *, int,
                         const double *, int, double, double *, int) noexcept nogil
ctypedef void (*set_threads_t)(int) noexcept nogil

cdef pack_size_t s_pack_size = NULL
cdef pack_size_t d_pack_size = NULL
cdef spack_t s_pack = NULL
cdef dpack_t d_pack = NULL
cdef scompute_t s_compute = NULL
cdef dcompute_t d_compute = NULL
cdef sgemm_t mkl_sgemm = NULL
cdef dgemm_t mkl_dgemm = NULL


def have_blis():
    return bool(HAVE_BLIS)


def load_mkl(bytes path):
    """dlopen MKL's single dynamic library and set it to one thread; False if absent."""
    global s_pack_size, d_pack_size, s_pack, d_pack, s_compute, d_compute
    global mkl_sgemm, mkl_dgemm
    cdef void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL)
    if h == NULL:
        return False
    s_pack_size = <pack_size_t> dlsym(h, b"cblas_sgemm_pack_get_size")
    d_pack_size = <pack_size_t> dlsym(h, b"cblas_dgemm_pack_get_size")
    s_pack = <spack_t> dlsym(h, b"cblas_sgemm_pack")
    d_pack = <dpack_t> dlsym(h, b"cblas_dgemm_pack")
    s_compute = <scompute_t> dlsym(h, b"cblas_sgemm_compute")
    d_compute = <dcompute_t> dlsym(h, b"cblas_dgemm_compute")
    mkl_sgemm = <sgemm_t> dlsym(h, b"cblas_sgemm")
    mkl_dgemm = <dgemm_t> dlsym(h, b"cblas_dgemm")
    cdef set_threads_t set_threads = <set_threads_t> dlsym(h, b"MKL_Set_Num_Threads")
    if set_threads != NULL:
        set_threads(1)
    return s_compute != NULL and mkl_sgemm != NULL


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t> ts.tv_sec * 1000000000 + ts.tv_nsec


OPTIONS = ("openblas_plain", "openblas_transposed", "packed", "blis", "mkl", "mkl_packed")


def run(str option, bint backward, int steps, const floating[:, ::1] W_hh,
        const floating[:, ::1] W_hhT, const floating[:, :, ::1] lhs,
        floating[:, :, ::1] out, floating[::1] scratch):
    """steps products of one direction in form `option`; returns (pack_ns, loop_ns): the
    once-per-call preparation (packing) and the loop. Forward: lhs (SLOTS, B, H), out
    (SLOTS, B, GH); backward: lhs (SLOTS, B, GH), out (SLOTS, B, H)."""
    cdef int GH = W_hh.shape[0], H = W_hh.shape[1], B = lhs.shape[1]
    cdef int K = GH if backward else H
    cdef int N = H if backward else GH
    cdef int code = OPTIONS.index(option)
    cdef Py_ssize_t t, s
    cdef int64_t t0, t1, t2
    cdef floating *Wp = NULL
    cdef size_t nbytes = 0
    cdef const floating *w = &W_hh[0, 0]
    cdef const floating *wT = &W_hhT[0, 0]
    cdef floating *sc = &scratch[0]
    cdef floating beta = 0 if backward else 1
    if code == 2:
        nbytes = packed_size(&out[0, 0, 0], K, N) * sizeof(floating)
    elif code == 5:
        if s_compute == NULL:
            raise RuntimeError("MKL not loaded")
        nbytes = (s_pack_size if floating is float else d_pack_size)(
            CblasBMatrix, B, N, K)
    elif code == 3 and not HAVE_BLIS:
        raise RuntimeError("blis not installed")
    elif code == 4 and mkl_sgemm == NULL:
        raise RuntimeError("MKL not loaded")
    if nbytes:
        Wp = <floating *> malloc(nbytes)
        if Wp == NULL:
            raise MemoryError()
    with nogil:
        t0 = now_ns()
        if code == 2:
            if backward:
                pack(w, K, N, H, 1, Wp)          # op(B) = W_hh (GH x H)
            else:
                pack(w, K, N, 1, H, Wp)          # op(B) = W_hh^T (H x GH)
        elif code == 5:
            if floating is float:
                s_pack(RowMajor, CblasBMatrix, CblasNoTrans if backward else CblasTrans,
                       B, N, K, 1, w, H, Wp)
            else:
                d_pack(RowMajor, CblasBMatrix, CblasNoTrans if backward else CblasTrans,
                       B, N, K, 1, w, H, Wp)
        t1 = now_ns()
        for t in range(steps):
            s = t % SLOTS
            if code == 0 or code == 1:
                if backward:
                    recurrent_product_grad(w, wT, &lhs[s, 0, 0], GH, 0, &out[s, 0, 0], B,
                                           GH, H, code == 1, sc, NULL, t, NULL, NULL)
                else:
                    recurrent_product(w, &lhs[s, 0, 0], 1, &out[s, 0, 0], GH, B, GH, H,
                                      code == 1, sc, NULL)
            elif code == 2:
                packed_gemm(B, N, K, &lhs[s, 0, 0], K, Wp, not backward, &out[s, 0, 0], N)
            elif code == 3:
                IF HAVE_BLIS:
                    if floating is float:
                        blis_cy.sgemm(False, not backward, B, N, K, 1, &lhs[s, 0, 0], K,
                                      w, H, beta, &out[s, 0, 0], N)
                    else:
                        blis_cy.dgemm(False, not backward, B, N, K, 1, &lhs[s, 0, 0], K,
                                      w, H, beta, &out[s, 0, 0], N)
            elif code == 4:
                if floating is float:
                    mkl_sgemm(RowMajor, CblasNoTrans, CblasNoTrans if backward else CblasTrans,
                              B, N, K, 1, &lhs[s, 0, 0], K, w, H, beta, &out[s, 0, 0], N)
                else:
                    mkl_dgemm(RowMajor, CblasNoTrans, CblasNoTrans if backward else CblasTrans,
                              B, N, K, 1, &lhs[s, 0, 0], K, w, H, beta, &out[s, 0, 0], N)
            elif code == 5:
                if floating is float:
                    s_compute(RowMajor, CblasNoTrans, CblasPacked, B, N, K, &lhs[s, 0, 0], K,
                              Wp, N, beta, &out[s, 0, 0], N)
                else:
                    d_compute(RowMajor, CblasNoTrans, CblasPacked, B, N, K, &lhs[s, 0, 0], K,
                              Wp, N, beta, &out[s, 0, 0], N)
        t2 = now_ns()
    free(Wp)
    return t1 - t0, t2 - t1
