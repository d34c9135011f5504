# The GEMM roofline of one forward+backward: only the matrix products that a cell's
# compiled kernels make (the same calls with the same shapes, transposes, leading
# dimensions and betas, in the same order, time-major, every sequence T steps long), back
# to back, with nothing between them. It is built from the kernels' own helpers
# (recurrent_gemm.pxd), so it cannot drift from them; tests/test_gemm_calls.py compares
# the two call sequences through blas.pyx's call log. fastbptt.bench times it beside the
# kernels: roofline / compiled time is the share of the compiled time that is matrix
# products, so 1 - that share is what the element-wise passes, copies and the per-step
# loop cost. In the transposed step form the product includes its small tiled transpose
# (recurrent_gemm.pxd: the two are one form of the product).
#
# The calls, with GH = G*H (rnn G = 1, gru 3, lstm 4) and P, dA (T*B x ldp):
#   forward   P = X W_ih^T                        (T*B x GH) = (T*B x I)(GH x I)^T
#             per step t: h_{t-1} W_hh^T          (B x GH), recurrent_product: added to
#               P_t (R None), or written to R (the GRU: its reset gate multiplies it)
#   backward  per step t: carry (+)= dA_t W_hh    (B x H), recurrent_product_grad (+= when
#               R is given: the GRU's cell pass writes the carry's direct part first)
#             dW_ih = dP^T X (GH x I), dX = dP W_ih (T*B x I), input_grads, dP = dA's
#               columns [0, front) + [back, ldp);  dW_hh = dA^T H_prev (GH x H)
# Each kernel module's gemm_layout(H) gives its front, back and whether it uses R.

from cython cimport floating

from fastbptt._kernels.recurrent_gemm cimport (input_grads, input_product, recurrent_product,
                                               recurrent_product_grad, recurrent_weight_grad)
from fastbptt._kernels.blas cimport gemm, NoTrans, one_thread_begin, one_thread_end
from fastbptt._kernels.step_packing cimport free_step_weights, pack_step_weights


def recurrent_gemms(*, const floating[:, ::1] X, const floating[:, ::1] W_ih,
                    const floating[:, ::1] W_hh, const floating[:, ::1] W_hhT,
                    floating[:, ::1] P, floating[:, ::1] R, floating[:, :, ::1] hbuf,
                    floating[::1] scratch, floating[:, ::1] carry, floating[:, ::1] dX,
                    floating[:, ::1] dW_ih, floating[:, ::1] dW_hh, bint transposed,
                    int front, int back, bint packed=False):
    """Run the matrix products of one forward+backward. Shapes: X (T*B, I), W_ih (GH, I),
    W_hh (GH, H), W_hhT (H, GH) (read when transposed), P (T*B, ldp) (the
    pre-activations, then reused as dA), R (B, GH) or None (see the top of this file),
    hbuf (T+1, B, H) (read only: the states), scratch (GH*B), carry (B, H), dX (T*B, I),
    dW_ih (GH, I), dW_hh (GH, H); front and back as in the kernel's gemm_layout; packed:
    the per-step products on W_hh packed once each way, as the kernels do (the packing
    timed with them). The values are the caller's; nothing is checked."""
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    cdef int I = X.shape[1], GH = W_hh.shape[0], ldp = P.shape[1]
    cdef Py_ssize_t t
    cdef bint own = R is not None
    cdef floating *R_ = &R[0, 0] if own else NULL
    cdef floating *W_hhT_p = &W_hhT[0, 0] if transposed else NULL
    cdef floating *P_t
    cdef int saved   # what one_thread_end needs (blas.pxd)
    cdef floating *W_packed = NULL
    with nogil:
        saved = one_thread_begin()   # on one BLAS thread, as the kernels run (blas.pxd)
        if packed:
            W_packed = pack_step_weights(&W_hh[0, 0], GH, H, B, False)
        input_product(&X[0, 0], &W_ih[0, 0], &P[0, 0], ldp, T * B, GH, I)
        for t in range(T):
            P_t = &P[0, 0] + t * B * ldp
            if own:
                recurrent_product(&W_hh[0, 0], &hbuf[t, 0, 0], 0, R_, GH, B, GH, H,
                                  transposed, &scratch[0], W_packed)
            else:
                recurrent_product(&W_hh[0, 0], &hbuf[t, 0, 0], 1, P_t, ldp, B, GH, H,
                                  transposed, &scratch[0], W_packed)
        free_step_weights(W_packed)
        W_packed = NULL
        if packed:
            W_packed = pack_step_weights(&W_hh[0, 0], GH, H, B, True)
        for t in range(T - 1, -1, -1):
            P_t = &P[0, 0] + t * B * ldp     # dA_t
            recurrent_product_grad(&W_hh[0, 0], W_hhT_p, P_t, ldp, 1 if own else 0,
                                   &carry[0, 0], B, GH, H, transposed, &scratch[0], NULL,
                                   t, NULL, W_packed)
        free_step_weights(W_packed)
        input_grads(&X[0, 0], &W_ih[0, 0], &P[0, 0], ldp, &dX[0, 0], &dW_ih[0, 0], T * B,
                    I, front, back)
        recurrent_weight_grad(&hbuf[0, 0, 0], &P[0, 0], ldp, &dW_hh[0, 0], T, B, GH, H,
                              False)
        one_thread_end(saved)


def square_gemm(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C):
    """C = A B for square n x n matrices: the machine's GEMM ceiling, 2 n^3 FLOPs."""
    cdef int n = C.shape[0]
    with nogil:
        gemm(NoTrans, NoTrans, n, n, n, 1, &A[0, 0], n, &B[0, 0], n, 0, &C[0, 0], n)
