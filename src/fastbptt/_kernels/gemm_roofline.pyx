# The GEMM roofline of one forward+backward: only the BLAS calls that a G-gate cell's
# compiled kernels make (the same shapes, transposes and counts, time-major, every
# sequence T steps long), back to back, with nothing between them. fastbptt.bench times
# it beside the kernels; roofline / compiled time is the share of the compiled time that
# is GEMM, so 1 - that share is what the element-wise passes, transposes, copies and the
# per-step loop cost.
#
# The calls, with GH = G*H (rnn G = 1, gru 3, lstm 4) and P, dA (T*B x GH):
#   forward   P = X W_ih^T                      (T*B x GH) = (T*B x I)(GH x I)^T
#             per step t: P_t += h_{t-1} W_hh^T  (B x GH), as add_recurrent_product does:
#               B <= GEMV_ROWS: a GEMV per row; transposed: W_hh h^T (GH x B);
#               else h W_hh^T (B x GH)
#   backward  per step t: carry = dA_t W_hh      (B x H), as recurrent_product_grad does
#             dW_ih = dA^T X (GH x I), dX = dA W_ih (T*B x I), dW_hh = dA^T H_prev (GH x H)
# The GRU's kernels split dW_ih and dX into two calls each (its dA has 4H columns); the
# FLOPs are the same and the split is left out here.

from cython cimport floating

from fastbptt._kernels.blas cimport gemm, gemv, NoTrans, Trans
from fastbptt._kernels.recurrent_gemm cimport GEMV_ROWS


def recurrent_gemms(const floating[:, ::1] X, const floating[:, ::1] W_ih,
                    const floating[:, ::1] W_hh, const floating[:, ::1] W_hhT,
                    floating[:, ::1] P, floating[:, :, ::1] hbuf, floating[::1] scratch,
                    floating[:, ::1] carry, floating[:, ::1] dX, floating[:, ::1] dW_ih,
                    floating[:, ::1] dW_hh, bint transposed):
    """Run the GEMM calls of one forward+backward. Shapes: X (T*B, I), W_ih (GH, I),
    W_hh (GH, H), W_hhT (H, GH), P (T*B, GH) (the pre-activations, then reused as dA),
    hbuf (T+1, B, H) (read only: the states), scratch (GH*B), carry (B, H), dX (T*B, I),
    dW_ih (GH, I), dW_hh (GH, H). The values are the caller's; nothing is checked."""
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    cdef int I = X.shape[1], GH = W_hh.shape[0]
    cdef Py_ssize_t t, b
    cdef floating *P_t
    cdef const floating *h_prev
    with nogil:
        # P = X W_ih^T: (T*B x GH) = (T*B x I)(GH x I)^T
        gemm(NoTrans, Trans, T * B, GH, I, 1, &X[0, 0], I, &W_ih[0, 0], I, 0, &P[0, 0], GH)
        for t in range(T):
            P_t = &P[0, 0] + t * B * GH
            h_prev = &hbuf[t, 0, 0]
            if B <= GEMV_ROWS:
                # per row b: P_t[b] += W_hh h_prev[b]: (GH) = (GH x H)(H)
                for b in range(B):
                    gemv(NoTrans, GH, H, 1, &W_hh[0, 0], H, h_prev + b * H, 1, P_t + b * GH)
            elif transposed:
                # scratch = W_hh h_prev^T: (GH x B) = (GH x H)(B x H)^T
                gemm(NoTrans, Trans, GH, B, H, 1, &W_hh[0, 0], H, h_prev, H, 0,
                     &scratch[0], B)
            else:
                # P_t += h_prev W_hh^T: (B x GH) = (B x H)(GH x H)^T
                gemm(NoTrans, Trans, B, GH, H, 1, h_prev, H, &W_hh[0, 0], H, 1, P_t, GH)
        for t in range(T - 1, -1, -1):
            P_t = &P[0, 0] + t * B * GH     # dA_t
            if B <= GEMV_ROWS:
                # per row b: carry[b] = W_hh^T dA_t[b]: (H) = (GH x H)^T (GH)
                for b in range(B):
                    gemv(Trans, GH, H, 1, &W_hh[0, 0], H, P_t + b * GH, 0, &carry[0, 0] + b * H)
            elif transposed:
                # scratch = W_hh^T dA_t^T: (H x B) = (H x GH)(B x GH)^T
                gemm(NoTrans, Trans, H, B, GH, 1, &W_hhT[0, 0], GH, P_t, GH, 0,
                     &scratch[0], B)
            else:
                # carry = dA_t W_hh: (B x H) = (B x GH)(GH x H)
                gemm(NoTrans, NoTrans, B, H, GH, 1, P_t, GH, &W_hh[0, 0], H, 0,
                     &carry[0, 0], H)
        # dW_ih = dA^T X: (GH x I) = (T*B x GH)^T (T*B x I)
        gemm(Trans, NoTrans, GH, I, T * B, 1, &P[0, 0], GH, &X[0, 0], I, 0, &dW_ih[0, 0], I)
        # dX = dA W_ih: (T*B x I) = (T*B x GH)(GH x I)
        gemm(NoTrans, NoTrans, T * B, I, GH, 1, &P[0, 0], GH, &W_ih[0, 0], I, 0,
             &dX[0, 0], I)
        # dW_hh = dA^T H_prev: (GH x H) = (T*B x GH)^T (T*B x H)
        gemm(Trans, NoTrans, GH, H, T * B, 1, &P[0, 0], GH, &hbuf[0, 0, 0], H, 0,
             &dW_hh[0, 0], H)


def square_gemm(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C):
    """C = A B for square n x n matrices: the machine's GEMM ceiling, 2 n^3 FLOPs."""
    cdef int n = C.shape[0]
    with nogil:
        gemm(NoTrans, NoTrans, n, n, n, 1, &A[0, 0], n, &B[0, 0], n, 0, &C[0, 0], n)
