# The BLAS shim; see blas.pxd for the row-major convention.

from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

cdef extern from "blas_threads.h":
    int fb_find_thread_control(void *blas_function)
    int fb_blas_threads() noexcept nogil
    void fb_set_blas_threads(int n) noexcept nogil
    int fb_one_thread_begin() noexcept nogil
    void fb_one_thread_end(int joined) noexcept nogil
    int fb_callers_threads() noexcept nogil

# Once, at import: the thread count functions of the BLAS that sgemm calls (blas_threads.h)
cdef bint _thread_control = fb_find_thread_control(<void *> sgemm)


# MKL's CBLAS GEMMs (LP64, sequential), when step_packing has loaded MKL and it is the
# packer: (layout, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
ctypedef void (*cblas_sgemm_t)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int) noexcept nogil
ctypedef void (*cblas_dgemm_t)(int, int, int, int, int, int, double, const double *, int,
                               const double *, int, double, double *, int) noexcept nogil
cdef cblas_sgemm_t _mkl_sgemm = NULL
cdef cblas_dgemm_t _mkl_dgemm = NULL

cdef enum:
    CblasRowMajor = 101
    CblasNoTrans = 111
    CblasTrans = 112


cdef void use_mkl_gemm(void *sgemm_, void *dgemm_) noexcept nogil:
    global _mkl_sgemm, _mkl_dgemm
    _mkl_sgemm = <cblas_sgemm_t> sgemm_
    _mkl_dgemm = <cblas_dgemm_t> dgemm_


def gemm_library():
    """"mkl" when the kernels' GEMMs run on MKL's cblas_?gemm (the mkl extra installed
    and MKL the packer: fastbptt.runtime.packing, which fastbptt._kernels asks at import),
    else "scipy" (scipy's BLAS)."""
    return "mkl" if _mkl_sgemm != NULL else "scipy"


# The call log, for the tests that hold gemm_roofline to the kernels
# (tests/test_gemm_calls.py): while on, every gemm and gemv call appends its arguments
# (not its operands) to _calls. Off, it costs each call one test of a module-level flag
# that is always false, a branch the CPU predicts.
cdef bint _logging = False
cdef list _calls = []
cdef list _call_threads = []   # the BLAS thread count at each logged call
cdef list _last_threads = []   # _call_threads of the log stop_call_log last returned


cdef void _log_gemm(char ta, char tb, int m, int n, int k, double alpha, int lda,
                    int ldb, double beta, int ldc) noexcept nogil:
    with gil:
        _calls.append(("gemm", chr(ta), chr(tb), m, n, k, alpha, lda, ldb, beta, ldc))
        _call_threads.append(fb_blas_threads())


cdef void _log_gemv(char ta, int m, int n, double alpha, int lda,
                    double beta) noexcept nogil:
    with gil:
        _calls.append(("gemv", chr(ta), m, n, alpha, lda, beta))
        _call_threads.append(fb_blas_threads())


cdef void log_packed(bint mkl, int m, int n, int k, double beta, int lda,
                     int ldc) noexcept nogil:
    """Record a packed per-step product (step_packing.packed_step) and its packer while
    the log is on."""
    if _logging:
        with gil:
            _calls.append(("packed", "mkl" if mkl else "own", m, n, k, beta, lda, ldc))
            _call_threads.append(fb_blas_threads())


def start_call_log():
    """Record every gemm and gemv call from now on (from any kernel), forgetting earlier
    ones. For tests only: recording takes the GIL on every call."""
    global _logging
    del _calls[:]
    del _call_threads[:]
    _logging = True


def stop_call_log():
    """Stop recording and return the calls recorded since start_call_log: tuples
    ("gemm", transA, transB, m, n, k, alpha, lda, ldb, beta, ldc) and
    ("gemv", transA, m, n, alpha, lda, beta), row-major as the kernels call them, and
    ("packed", packer, m, n, k, beta, lda, ldc) for a per-step product on packed weights
    ("mkl" or "own": the packer that packed them)."""
    global _logging, _last_threads
    _logging = False
    calls = list(_calls)
    _last_threads = list(_call_threads)
    del _calls[:]
    del _call_threads[:]
    return calls


def last_call_threads():
    """The BLAS thread count at each call that stop_call_log last returned, in its order
    (0 where the count cannot be read: see blas_threads())."""
    return list(_last_threads)


cdef int one_thread_begin() noexcept nogil:
    """Run on one BLAS thread from here to one_thread_end; returns what to pass it.

    Concurrent calls from several Python threads stay safe (blas_threads.h): the first
    section to open saves the caller's count and sets 1, the last to close restores it.
    The count is the process's (OpenBLAS has no per-thread count in its pthreads build):
    while one call runs, other threads' BLAS calls (scipy's, not numpy's) run on one
    thread too, and the caller must not change the count meanwhile."""
    return fb_one_thread_begin()


cdef void one_thread_end(int saved) noexcept nogil:
    """Close the section one_thread_begin opened (saved: what it returned)."""
    fb_one_thread_end(saved)


def one_thread_enter():
    """one_thread_begin from Python (the batch split around its blocks); returns the
    token to pass to one_thread_exit."""
    return fb_one_thread_begin()


def one_thread_exit(int token):
    """one_thread_end from Python."""
    fb_one_thread_end(token)


def callers_threads():
    """The caller's BLAS thread count: the one saved by the one-thread sections open now
    (in any thread), else the BLAS's own; 0 when it cannot be read."""
    return fb_callers_threads()


def has_thread_control():
    """Whether the thread count of scipy's BLAS can be read and set here (OpenBLAS with
    dladdr: see blas_threads.h); without it the kernels run as the BLAS chooses."""
    return bool(_thread_control)


def blas_threads():
    """The thread count of the BLAS that the kernels call, or 0 when it cannot be read."""
    return fb_blas_threads()


def set_blas_threads(int n):
    """Set the thread count of the BLAS that the kernels call (n >= 1); returns the
    previous count (0, and nothing set, without thread control)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cdef int previous = fb_blas_threads()
    fb_set_blas_threads(n)
    return previous


cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating *A, int lda,
               const floating *B, int ldb,
               floating beta, floating *C, int ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C  (row-major)."""
    cdef char ta_ = <char> ta
    cdef char tb_ = <char> tb
    cdef Py_ssize_t i, j
    if _logging:
        _log_gemm(ta_, tb_, m, n, k, alpha, lda, ldb, beta, ldc)
    if m == 0 or n == 0:
        return
    if k == 0:
        # Reference BLAS handles k = 0, but not every BLAS does (and lda >= 1 rules make
        # the call fragile): C := beta * C by hand.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if floating is float:
        if _mkl_sgemm != NULL:
            _mkl_sgemm(CblasRowMajor, CblasNoTrans if ta == NoTrans else CblasTrans,
                       CblasNoTrans if tb == NoTrans else CblasTrans, m, n, k, alpha, A, lda,
                       B, ldb, beta, C, ldc)
            return
    else:
        if _mkl_dgemm != NULL:
            _mkl_dgemm(CblasRowMajor, CblasNoTrans if ta == NoTrans else CblasTrans,
                       CblasNoTrans if tb == NoTrans else CblasTrans, m, n, k, alpha, A, lda,
                       B, ldb, beta, C, ldc)
            return
    # Column-major: C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m)
    if floating is float:
        sgemm(&tb_, &ta_, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb_, &ta_, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &beta, C, &ldc)


cdef void gemv(BLAS_Trans ta, int m, int n, floating alpha, const floating *A, int lda,
               const floating *x, floating beta, floating *y) noexcept nogil:
    """y := alpha * op(A) @ x + beta * y  (row-major A of m rows and n columns)."""
    # Row-major A (m x n) is column-major A^T (n x m): op(A) = A is the 'T' call on it.
    cdef char ta_ = b't' if ta == NoTrans else b'n'
    cdef int one = 1
    cdef int out_len = m if ta == NoTrans else n
    cdef Py_ssize_t i
    if _logging:
        _log_gemv(<char> ta, m, n, alpha, lda, beta)
    if out_len == 0:
        return
    if m == 0 or n == 0:
        for i in range(out_len):
            y[i] = 0 if beta == 0 else beta * y[i]
        return
    if floating is float:
        sgemv(&ta_, &n, &m, &alpha, <float*> A, &lda, <float*> x, &one, &beta, y, &one)
    else:
        dgemv(&ta_, &n, &m, &alpha, <double*> A, &lda, <double*> x, &one, &beta, y, &one)


# Python entry points, for the tests that hold the shim to NumPy. They dispatch on the
# arrays' dtype (alpha and beta arrive as Python floats and are rounded to it) and pass
# the arrays' own leading dimensions.

def gemm_py(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A,
            const floating[:, ::1] B, double beta, floating[:, ::1] C):
    """C := alpha * op(A) @ op(B) + beta * C, in place; returns C."""
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    if (B.shape[1] if trans_b else B.shape[0]) != k or \
            (A.shape[1] if trans_a else A.shape[0]) != m or \
            (B.shape[0] if trans_b else B.shape[1]) != n:
        raise ValueError("gemm_py: shapes do not agree")
    cdef const floating *a = &A[0, 0] if A.shape[0] * A.shape[1] else NULL
    cdef const floating *b = &B[0, 0] if B.shape[0] * B.shape[1] else NULL
    cdef floating *c = &C[0, 0] if m * n else NULL
    with nogil:
        gemm(Trans if trans_a else NoTrans, Trans if trans_b else NoTrans, m, n, k,
             <floating> alpha, a, max(1, <int> A.shape[1]), b, max(1, <int> B.shape[1]),
             <floating> beta, c, max(1, n))
    return C.base


def gemv_py(bint trans_a, double alpha, const floating[:, ::1] A,
            const floating[::1] x, double beta, floating[::1] y):
    """y := alpha * op(A) @ x + beta * y, in place; returns y."""
    cdef int m = A.shape[0], n = A.shape[1]
    if x.shape[0] != (m if trans_a else n) or y.shape[0] != (n if trans_a else m):
        raise ValueError("gemv_py: shapes do not agree")
    cdef const floating *a = &A[0, 0] if m * n else NULL
    cdef const floating *xp = &x[0] if x.shape[0] else NULL
    cdef floating *yp = &y[0] if y.shape[0] else NULL
    with nogil:
        gemv(Trans if trans_a else NoTrans, m, n, <floating> alpha, a, max(1, n), xp,
             <floating> beta, yp)
    return y.base
