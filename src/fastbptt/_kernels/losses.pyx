# Fused affine output head and loss: y = h W^T + b over N rows, a loss per row, and the
# gradients of h, W and b, without the (N x V) logits.
#
# The rows are walked in blocks of `nb` rows (the workspace `work` holds one block's
# logits, nb x V). Per block starting at row r:
#
#   work = h_blk W^T                   (nb x V) = (nb x H)(V x H)^T        one GEMM
#   per row: add b, the loss, and dl/dy * g over the row in place (loss_rows.h)
#   dW  += work^T h_blk                (V x H)  = (nb x V)^T (nb x H)      GEMM (beta = 0 first)
#   dh_blk = work W                    (nb x H) = (nb x V)(V x H)          GEMM
#   db  += sum of work's rows          (V)
#
# so the memory is O(nb V) whatever N, and each block's logits are reused from cache by the
# two gradient GEMMs. g = weight[n] * scale: the row's mask weight (0 skips it: its
# gradient row is 0 and its loss is not added) times 1 ("sum") or 1 / denominator ("mean").
# The rows' losses times their weights are summed in float64; the wrapper divides for "mean".
#
# The wrappers in fastbptt.losses validate every argument and allocate every buffer;
# nothing here allocates, touches a Python object inside the loop, or holds the GIL.

from cython cimport floating
from libc.string cimport memset

from fastbptt._kernels.blas cimport gemm, NoTrans, Trans, one_thread_begin, one_thread_end
from fastbptt._kernels.activations cimport accumulate

cdef extern from "loss_rows.h" nogil:
    double fb_softmax_xent_row_f32(float *y, const float *bias, Py_ssize_t V, Py_ssize_t t,
                                   float g)
    double fb_softmax_xent_row_f64(double *y, const double *bias, Py_ssize_t V,
                                   Py_ssize_t t, double g)
    double fb_sigmoid_bce_row_f32(float *y, const float *bias, const float *target,
                                  Py_ssize_t V, float g)
    double fb_sigmoid_bce_row_f64(double *y, const double *bias, const double *target,
                                  Py_ssize_t V, double g)
    double fb_squared_error_row_f32(float *y, const float *bias, const float *target,
                                    Py_ssize_t V, float g)
    double fb_squared_error_row_f64(double *y, const double *bias, const double *target,
                                    Py_ssize_t V, double g)

# Codes of the losses, shared with fastbptt.losses.
cpdef enum LossKind:
    SOFTMAX_XENT = 0
    SIGMOID_BCE = 1
    SQUARED_ERROR = 2


cdef inline double _row(LossKind kind, floating *y, const floating *bias,
                        const Py_ssize_t *classes, const floating *targets, Py_ssize_t n,
                        Py_ssize_t V, floating g) noexcept nogil:
    """Row n's loss (unweighted); y becomes g dl/dy."""
    if kind == SOFTMAX_XENT:
        if floating is float:
            return fb_softmax_xent_row_f32(y, bias, V, classes[n], g)
        else:
            return fb_softmax_xent_row_f64(y, bias, V, classes[n], g)
    elif kind == SIGMOID_BCE:
        if floating is float:
            return fb_sigmoid_bce_row_f32(y, bias, targets + n * V, V, g)
        else:
            return fb_sigmoid_bce_row_f64(y, bias, targets + n * V, V, g)
    else:
        if floating is float:
            return fb_squared_error_row_f32(y, bias, targets + n * V, V, g)
        else:
            return fb_squared_error_row_f64(y, bias, targets + n * V, V, g)


def head_loss(LossKind kind, const floating[:, ::1] h, const floating[:, ::1] W,
              const floating[::1] b, const Py_ssize_t[::1] classes,
              const floating[:, ::1] targets, const double[::1] weights, double scale,
              floating[:, ::1] dh, floating[:, ::1] dW, floating[::1] db,
              floating[:, ::1] work):
    """The summed, weighted row losses (float64); fills dh (N, H), dW (V, H) and db (V,)
    when dh is not None (then dW and, with b, db are given too; db is zeroed here).

    h (N, H); W (V, H); b (V,) or None; classes (N,) for SOFTMAX_XENT (else None);
    targets (N, V) for the others (else None); weights (N,) or None (all 1); work
    (nb, V) the block workspace. Every size is at least 1 (the wrapper sends empty
    problems to the reference).
    """
    cdef int N = h.shape[0], H = h.shape[1], V = W.shape[0], nb = work.shape[0]
    cdef Py_ssize_t ld = V     # row stride of work, in Py_ssize_t: i * V may pass 2^31
    cdef bint grad = dh is not None
    cdef const floating *bias = &b[0] if b is not None else NULL
    cdef const Py_ssize_t *cls = &classes[0] if classes is not None else NULL
    cdef const floating *tgt = &targets[0, 0] if targets is not None else NULL
    cdef const double *wts = &weights[0] if weights is not None else NULL
    cdef floating *dbp = &db[0] if db is not None else NULL
    cdef floating *y = &work[0, 0]
    cdef double total = 0, w
    cdef int blk, r, rows, i
    cdef Py_ssize_t n
    cdef int saved   # what one_thread_end needs (blas.pxd)
    with nogil:
        saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
        if dbp != NULL:
            memset(dbp, 0, ld * sizeof(floating))
        for blk in range((N + nb - 1) // nb):
            r = blk * nb
            rows = min(nb, N - r)
            # work = h[r:r+rows] W^T: (rows x V) = (rows x H)(V x H)^T
            gemm(NoTrans, Trans, rows, V, H, 1, &h[r, 0], H, &W[0, 0], H, 0, y, V)
            for i in range(rows):
                n = r + i
                w = wts[n] if wts != NULL else 1.0
                if w == 0:
                    # Not counted: no loss, no gradient (whatever its logits or target).
                    memset(y + i * ld, 0, ld * sizeof(floating))
                    continue
                total += w * _row(kind, y + i * ld, bias, cls, tgt, n, ld,
                                  <floating> (w * scale))
            if not grad:
                continue
            # dW += work^T h[r:r+rows]: (V x H) = (rows x V)^T (rows x H); the first block
            # overwrites (beta = 0), so dW needs no zeroing
            gemm(Trans, NoTrans, V, H, rows, 1, y, V, &h[r, 0], H, 0 if r == 0 else 1,
                 &dW[0, 0], H)
            # dh[r:r+rows] = work W: (rows x H) = (rows x V)(V x H)
            gemm(NoTrans, NoTrans, rows, H, V, 1, y, V, &W[0, 0], H, 0, &dh[r, 0], H)
            if dbp != NULL:
                # db += the rows of work
                for i in range(rows):
                    accumulate(dbp, y + i * ld, ld)
        one_thread_end(saved)
    return total
