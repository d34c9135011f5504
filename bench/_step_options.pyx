# The per-step product in each tried form, as a T-step loop timed in C (compiled at run
# time by bench/per_step_gemm_options.py, which documents it). Forward: P_t (B x GH) +=
# h (B x H) W_hh^T; backward: carry (B x H) = dA_t (B x GH) W_hh (GH x H). Each loop takes
# its operands from a ring of SLOTS steps, so that consecutive steps read and write
# different memory, as a kernel's steps do.
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True

from cython cimport floating
from libc.stdint cimport int64_t

from fastbptt._kernels.recurrent_gemm cimport recurrent_product, recurrent_product_grad
from fastbptt._kernels.step_packing cimport free_step_weights, pack_step_weights_by

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *tp)
    enum: CLOCK_MONOTONIC

cdef extern from "step_alloc.h" nogil:
    void *fb_dlopen(const char *path)
    void *fb_dlsym(void *lib, const char *name)

IF HAVE_BLIS:
    from blis cimport cy as blis_cy

cdef enum:
    SLOTS = 8
    RowMajor = 101
    CblasNoTrans = 111
    CblasTrans = 112

# MKL's cblas_?gemm, LP64 (MKL_INT = int), resolved by load_mkl; its packed GEMM is
# fastbptt's own step_packing with the "mkl" packer (set by the harness)
ctypedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int) noexcept nogil
ctypedef void (*dgemm_t)(int, int, int, int, int, int, double, const double *, int,
                         const double *, int, double, double *, int) noexcept nogil
ctypedef void (*set_threads_t)(int) noexcept nogil

cdef sgemm_t mkl_sgemm = NULL
cdef dgemm_t mkl_dgemm = NULL


def have_blis():
    return bool(HAVE_BLIS)


def load_mkl(bytes path):
    """MKL's cblas_?gemm from its single dynamic library (which fastbptt.runtime.packing
    has loaded sequential), set to one thread; False if absent."""
    global mkl_sgemm, mkl_dgemm
    cdef void *h = fb_dlopen(path)
    if h == NULL:
        return False
    mkl_sgemm = <sgemm_t> fb_dlsym(h, b"cblas_sgemm")
    mkl_dgemm = <dgemm_t> fb_dlsym(h, b"cblas_dgemm")
    cdef set_threads_t set_threads = <set_threads_t> fb_dlsym(h, b"MKL_Set_Num_Threads")
    if set_threads != NULL:
        set_threads(1)
    return mkl_sgemm != NULL and mkl_dgemm != NULL


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
    (SLOTS, B, GH); backward: lhs (SLOTS, B, GH), out (SLOTS, B, H). "packed" and
    "mkl_packed" run the kernels' own packed path (recurrent_product with W_packed),
    packed by the own packer and by MKL's (step_packing.pack_step_weights_by)."""
    cdef int GH = W_hh.shape[0], H = W_hh.shape[1], B = lhs.shape[1]
    cdef int K = GH if backward else H
    cdef int N = H if backward else GH
    cdef int code = OPTIONS.index(option)
    cdef Py_ssize_t t, s
    cdef int64_t t0, t1, t2
    cdef floating *Wp = NULL
    cdef const floating *w = &W_hh[0, 0]
    cdef const floating *wT = &W_hhT[0, 0]
    cdef floating *sc = &scratch[0]
    cdef floating beta = 0 if backward else 1
    cdef bint packs = code == 2 or code == 5
    if code == 3 and not HAVE_BLIS:
        raise RuntimeError("blis not installed")
    elif code == 4 and mkl_sgemm == NULL:
        raise RuntimeError("MKL not loaded")
    with nogil:
        t0 = now_ns()
        if packs:
            # each option its own packer, whatever the kernels would pick at this shape
            Wp = pack_step_weights_by(code == 5, w, GH, H, B, backward)
        t1 = now_ns()
        for t in range(steps):
            s = t % SLOTS
            if code <= 2 or code == 5:
                # the kernels' helpers; W_packed NULL unless packing
                if backward:
                    recurrent_product_grad(w, wT, &lhs[s, 0, 0], GH, 0, &out[s, 0, 0], B,
                                           GH, H, code == 1, sc, NULL, t, NULL, Wp)
                else:
                    recurrent_product(w, &lhs[s, 0, 0], 1, &out[s, 0, 0], GH, B, GH, H,
                                      code == 1, sc, Wp)
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
        t2 = now_ns()
        free_step_weights(Wp)
    return t1 - t0, t2 - t1
