# The GEMM roofline of one forward+backward: only the BLAS calls that a cell's compiled
# kernels make (time-major, every sequence T steps long), back to back, with nothing
# between them. fastbptt.bench times it beside the kernels; roofline / compiled time is
# the share of the compiled time that is GEMM, so 1 - that share is what the element-wise
# passes, transposes, copies and the per-step loop cost.
#
# It makes them through the kernels' own helpers (recurrent_gemm.pxd, their *_blas layer:
# the BLAS calls without the transposes back), with the cell's layout as arguments, so its
# calls are the kernels' calls by construction; tests/test_gemm_calls.py compares the two
# call logs (fastbptt._kernels.blas's call log). With GH = G*H (rnn G = 1, gru 3, lstm 4):
#   forward   A = X W_ih^T                      (T*B x GH) = (T*B x I)(GH x I)^T
#             per step t: h_{t-1} W_hh^T        (B x GH), in the step form given
#   backward  per step t: dA_t W_hh             (B x H)
#             dW_ih = dP^T X (GH x I), dX = dP W_ih (T*B x I), dW_hh = dR^T H_prev (GH x H)
# (shared_weight_grads: dP and dR, the GRU's dP in two column blocks).

from cython cimport floating

from fastbptt._kernels.blas cimport gemm, NoTrans
from fastbptt._kernels.recurrent_gemm cimport (input_projection, recurrent_product_blas,
                                               recurrent_product_grad_blas,
                                               shared_weight_grads, step_scratch,
                                               step_weights_T)


def recurrent_gemms(*, const floating[:, ::1] X, const floating[:, ::1] W_ih,
                    const floating[:, ::1] W_hh, floating[:, ::1] W_hhT,
                    floating[:, ::1] A, floating[:, ::1] R, floating[:, :, ::1] hbuf,
                    floating[::1] scratch, floating[:, ::1] carry_h, floating[:, ::1] dX,
                    floating[:, ::1] dW_ih, floating[:, ::1] dW_hh, int step_form, int split,
                    int tail):
    """Run the GEMM calls of one forward+backward of a cell. Shapes: X (T*B, I), W_ih and
    W_hh (GH, I) and (GH, H), A (T*B, ld) with ld >= GH (the pre-activations, then reused
    as dA), hbuf (T+1, B, H) (read only: the states), carry_h (B, H), dX (T*B, I), dW_ih
    (GH, I), dW_hh (GH, H). For STEP_TRANSPOSED, W_hhT (H, GH) = W_hh^T and scratch
    (GH*B); None otherwise.

    The cell's layout, as its kernels pass it to the helpers (each kernel module's
    gemm_layout(H) gives it): R None is the form of cells whose gates add the two
    products (RNN, LSTM): each step's product is added into A's rows (beta 1) and
    backward writes carry_h (beta 0). R (B, GH) is the GRU's form, whose reset gate
    multiplies the product: it is written apart into R (beta 0), and backward adds into
    carry_h (beta 1) what the cell pass wrote there first. split and tail place dP in A's
    columns (shared_weight_grads). The values are the caller's.
    """
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    cdef int I = X.shape[1], GH = W_hh.shape[0], ld = A.shape[1]
    cdef Py_ssize_t t
    cdef floating *A_p = &A[0, 0]
    cdef floating *R_p = &R[0, 0] if R is not None else NULL
    cdef floating *scratch_p = step_scratch(step_form, scratch, <Py_ssize_t> GH * B)
    cdef floating *W_hhT_p = step_weights_T(step_form, W_hhT, H, GH)
    cdef floating *carry = &carry_h[0, 0]
    cdef floating carry_beta = 0 if R is None else 1
    if ld < GH or (R is not None and (R.shape[0] != B or R.shape[1] != GH)):
        raise ValueError("A needs at least GH columns and R shape (B, GH)")
    with nogil:
        input_projection(&X[0, 0], &W_ih[0, 0], A_p, ld, T * B, GH, I)
        for t in range(T):
            if R_p == NULL:
                recurrent_product_blas(&W_hh[0, 0], &hbuf[t, 0, 0], A_p + t * B * ld, ld, B,
                                       GH, H, 1, step_form, scratch_p)
            else:
                recurrent_product_blas(&W_hh[0, 0], &hbuf[t, 0, 0], R_p, GH, B, GH, H, 0,
                                       step_form, scratch_p)
        for t in range(T - 1, -1, -1):
            recurrent_product_grad_blas(&W_hh[0, 0], W_hhT_p, A_p + t * B * ld, ld, carry,
                                        B, GH, H, carry_beta, step_form, scratch_p)
        shared_weight_grads(&X[0, 0], &W_ih[0, 0], &hbuf[0, 0, 0], A_p, ld, &dX[0, 0],
                            &dW_ih[0, 0], &dW_hh[0, 0], T, B, I, GH, H, split, tail, False)


def square_gemm(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C):
    """C = A B for square n x n matrices: the machine's GEMM ceiling, 2 n^3 FLOPs."""
    cdef int n = C.shape[0]
    with nogil:
        gemm(NoTrans, NoTrans, n, n, n, 1, &A[0, 0], n, &B[0, 0], n, 0, &C[0, 0], n)
