# The BLAS shim; see blas.pxd for the row-major convention.

from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


# The call log, for tests only (tests/test_gemm_calls.py: the roofline makes exactly the
# kernels' calls). Off unless start_call_log() switched it on; while off, a call pays one
# test of a module-level flag (bench/RESULTS.md, "The BLAS call log: cost when off"). It
# records the calls as the kernels make them, row-major, before the early returns for
# empty sizes. One process-wide log: meant for one thread at a time.
cdef struct CallRecord:
    char routine        # b'm' gemm, b'v' gemv
    char trans_a
    char trans_b        # gemm only
    int m, n, k         # gemv: m, n of A; k unused
    int lda, ldb, ldc   # gemv: lda only
    double beta

cdef bint _log_on = False
cdef CallRecord *_log = NULL
cdef Py_ssize_t _log_len = 0, _log_capacity = 0, _log_dropped = 0


cdef void _record(char routine, char ta, char tb, int m, int n, int k, int lda, int ldb,
                  int ldc, double beta) noexcept nogil:
    global _log_len, _log_dropped
    if _log_len == _log_capacity:
        _log_dropped += 1
        return
    _log[_log_len] = CallRecord(routine, ta, tb, m, n, k, lda, ldb, ldc, beta)
    _log_len += 1


def start_call_log(Py_ssize_t capacity=1 << 20):
    """Tests only: start recording every gemm/gemv call of the shim (up to `capacity`
    calls; stop_call_log raises if more were made). Replaces a log already running."""
    global _log, _log_on, _log_len, _log_capacity, _log_dropped
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    _log_on = False
    free(_log)
    _log = <CallRecord *> malloc(capacity * sizeof(CallRecord))
    if _log == NULL:
        raise MemoryError("start_call_log: cannot allocate the log")
    _log_len = _log_dropped = 0
    _log_capacity = capacity
    _log_on = True


def stop_call_log():
    """Tests only: stop recording and return the calls made since start_call_log, in
    order: ("gemm", trans_a, trans_b, m, n, k, lda, ldb, ldc, beta) or
    ("gemv", trans_a, m, n, lda, beta), trans_* "N" or "T", sizes row-major as the
    kernels pass them. Raises RuntimeError if no log was running or it overflowed."""
    global _log, _log_on, _log_len, _log_capacity
    cdef Py_ssize_t i
    cdef CallRecord r
    if _log == NULL:
        raise RuntimeError("stop_call_log: no call log is running")
    _log_on = False
    calls = []
    for i in range(_log_len):
        r = _log[i]
        ta = "N" if r.trans_a == NoTrans else "T"
        if r.routine == b'm':
            calls.append(("gemm", ta, "N" if r.trans_b == NoTrans else "T", r.m, r.n, r.k,
                          r.lda, r.ldb, r.ldc, r.beta))
        else:
            calls.append(("gemv", ta, r.m, r.n, r.lda, r.beta))
    free(_log)
    _log = NULL
    _log_len = _log_capacity = 0
    if _log_dropped:
        raise RuntimeError(f"stop_call_log: {_log_dropped} calls past the capacity were "
                           "not recorded")
    return calls


cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating *A, int lda,
               const floating *B, int ldb,
               floating beta, floating *C, int ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C  (row-major)."""
    cdef char ta_ = <char> ta
    cdef char tb_ = <char> tb
    cdef Py_ssize_t i, j
    if _log_on:
        _record(b'm', ta_, tb_, m, n, k, lda, ldb, ldc, beta)
    if m == 0 or n == 0:
        return
    if k == 0:
        # Reference BLAS handles k = 0, but not every BLAS does (and lda >= 1 rules make
        # the call fragile): C := beta * C by hand.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
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
    if _log_on:
        _record(b'v', <char> ta, 0, m, n, 0, lda, 0, 0, beta)
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
