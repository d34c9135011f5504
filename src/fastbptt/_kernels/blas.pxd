# The one BLAS shim of fastbptt: row-major GEMM and GEMV on a fused float/double type over
# scipy.linalg.cython_blas (Fortran, column-major). Row-major is handled here, once: a
# row-major matrix is the column-major storage of its transpose, so
# C = op(A) op(B) (row-major) is C^T = op(B)^T op(A)^T (column-major): the same call with
# the operands and their transposition flags swapped. No kernel thinks about Fortran order.

from cython cimport floating

cpdef enum BLAS_Trans:
    NoTrans = 110  # ord('n')
    Trans = 116    # ord('t')

# C := alpha * op(A) @ op(B) + beta * C, row-major, C (m x n), op(A) (m x k), op(B) (k x n)
cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating *A, int lda,
               const floating *B, int ldb,
               floating beta, floating *C, int ldc) noexcept nogil

# y := alpha * op(A) @ x + beta * y, row-major A (m x n), contiguous x and y
cdef void gemv(BLAS_Trans ta, int m, int n, floating alpha, const floating *A, int lda,
               const floating *x, floating beta, floating *y) noexcept nogil

# The thread policy of the kernels (fastbptt.runtime.threads): a kernel call runs on one
# BLAS thread. A step's products are far too small to pay for a second thread, and any
# threaded product, the batched ones before and after the time loop included, waits for
# a descheduled BLAS thread whenever another process keeps a core busy (bench/RESULTS.md,
# "Thread policy under load"); two cores come from the batch split instead
# (fastbptt.cells.batch_split). So every kernel brackets its work:
#     saved = one_thread_begin()   ...every product of the call...   one_thread_end(saved)
# begin sets scipy's BLAS to one thread when it runs more (or joins the one-thread section
# another thread opened) and returns what end needs to close it (blas_threads.h). Neither
# allocates nor takes the GIL.
cdef int one_thread_begin() noexcept nogil
cdef void one_thread_end(int saved) noexcept nogil

# MKL's row-major cblas_sgemm / cblas_dgemm (step_packing.pyx loads them with MKL's
# packed GEMM), or NULL: gemm runs on them instead of scipy's BLAS while they are set.
cdef void use_mkl_gemm(void *sgemm_, void *dgemm_) noexcept nogil

# The call log's entry for a per-step product that runs on packed weights
# (step_packing.pyx) instead of gemm: ("packed", packer, m, n, k, beta, lda, ldc), packer
# "mkl" when mkl is true, else "own".
cdef void log_packed(bint mkl, int m, int n, int k, double beta, int lda,
                     int ldc) noexcept nogil
