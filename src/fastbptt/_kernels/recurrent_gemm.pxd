# The matrix products that a G-gate cell's time loops share, inlined into the kernels
# that cimport them (lstm.pyx; rnn.pyx and gru.pyx make the same calls and could use
# these).
#
# Row order, as in rnn.pyx: a T*B-row matrix (the sequence X, the gate pre-activations
# and their gradients dA) is in x's row order, so one time step is B rows starting at row
# t * ts whose consecutive rows are `rs` rows apart (rs = 1, ts = B time-major; rs = T,
# ts = 1 batch-first). The hidden states live time-major in hbuf (T+1, B, H),
# hbuf[0] = h0.

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.blas cimport gemm, gemv, NoTrans, Trans
from fastbptt._kernels.transpose cimport transpose


# Up to this many rows, the per-step products run as one GEMV per row: OpenBLAS's GEMM
# driver (packing, blocking) costs microseconds per call that a few rows do not pay back.
# Measured with `fastbptt bench --cells lstm --no-torch --no-reference --no-roofline
# --threads 1` (AVX2 kernels, idle machine), ms per forward+backward, GEMM -> GEMV rows:
#   (50,2,16,32)   f32 0.234 -> 0.143, f64 0.378 -> 0.208
#   (100,2,128,128) f32 5.33 -> 3.17,  f64 11.18 -> 6.39
#   (100,4,128,128) f32 6.05 -> 4.66,  f64 15.71 -> 12.87
#   B = 8: H = 32 gains ~10%, H = 128 loses ~5% (f32): the GEMM is kept from B = 5 on.
# rnn.pyx and gru.pyx use the same threshold: RNN (100,2,128,128) f32 1.18 -> 0.66 ms,
# GRU 4.20 -> 2.70 ms; at B = 4 5-18% (the same command with --cells rnn,gru).
cdef enum:
    GEMV_ROWS = 4


cdef inline void add_recurrent_product(const floating *W_hh, const floating *h_prev,
                                       floating *P_t, int B, int GH, int H,
                                       Py_ssize_t rs, bint transposed,
                                       floating *scratch) noexcept nogil:
    """P_t += h_prev W_hh^T: (B x GH) += (B x H)(GH x H)^T, P_t's rows rs*GH apart.

    B == 1 runs GEMV. transposed runs the same product as its transpose into scratch
    (GH*B), then adds that back through a tiled transpose: OpenBLAS tiles its output's
    columns by its micro-kernel width, so with few rows B against many columns GH the
    transposed GEMM is faster (measured per cell; see the wrappers' _transposed_step).
    """
    cdef Py_ssize_t b
    if B <= GEMV_ROWS:
        # per row b: P_t[b] += W_hh h_prev[b]: (GH) = (GH x H)(H)
        for b in range(B):
            gemv(NoTrans, GH, H, 1, W_hh, H, h_prev + b * H, 1, P_t + b * rs * GH)
    elif transposed:
        # scratch = W_hh h_prev^T: (GH x B) = (GH x H)(B x H)^T;  P_t += scratch^T
        gemm(NoTrans, Trans, GH, B, H, 1, W_hh, H, h_prev, H, 0, scratch, B)
        transpose(scratch, GH, B, B, P_t, rs * GH, True)
    else:
        # P_t += h_prev W_hh^T: (B x GH) = (B x H)(GH x H)^T
        gemm(NoTrans, Trans, B, GH, H, 1, h_prev, H, W_hh, H, 1, P_t, <int> (rs * GH))


cdef inline void recurrent_product_grad(const floating *W_hh, const floating *W_hhT,
                                        const floating *dA_t, floating *carry, int B,
                                        int GH, int H, Py_ssize_t rs, bint transposed,
                                        floating *scratch, const Py_ssize_t *lengths,
                                        Py_ssize_t t, floating *hold) noexcept nogil:
    """carry = dA_t W_hh: (B x H) = (B x GH)(GH x H), dA_t's rows rs*GH apart, except
    the rows of sequences that have ended (lengths not NULL and t >= lengths[b]), which
    keep their carry: past its length a step is the identity. Their rows of dA_t must be
    zero; hold (B*H) keeps their carry across the GEMM.

    The reverse of add_recurrent_product, in the same three forms; transposed needs
    W_hhT = W_hh^T contiguous (H x GH) and scratch (H*B).
    """
    cdef Py_ssize_t b
    cdef bint any_ended = False
    if lengths != NULL:
        for b in range(B):
            if t >= lengths[b]:
                memcpy(hold + b * H, carry + b * H, H * sizeof(floating))
                any_ended = True
    if B <= GEMV_ROWS:
        # per row b: carry[b] = W_hh^T dA_t[b]: (H) = (GH x H)^T (GH)
        for b in range(B):
            gemv(Trans, GH, H, 1, W_hh, H, dA_t + b * rs * GH, 0, carry + b * H)
    elif transposed:
        # scratch = W_hh^T dA_t^T: (H x B) = (H x GH)(B x GH)^T;  carry = scratch^T
        gemm(NoTrans, Trans, H, B, GH, 1, W_hhT, GH, dA_t, <int> (rs * GH), 0, scratch, B)
        transpose(scratch, H, B, B, carry, H, False)
    else:
        # carry = dA_t W_hh: (B x H) = (B x GH)(GH x H)
        gemm(NoTrans, NoTrans, B, H, GH, 1, dA_t, <int> (rs * GH), W_hh, H, 0, carry, H)
    if any_ended:
        for b in range(B):
            if t >= lengths[b]:
                memcpy(carry + b * H, hold + b * H, H * sizeof(floating))


cdef inline void shared_weight_grads(const floating *X, const floating *W_ih,
                                     const floating *hbuf, const floating *dA,
                                     floating *dX, floating *dW_ih, floating *dW_hh,
                                     int T, int B, int I, int GH, int H,
                                     bint batch_first) noexcept nogil:
    """The gradients of the weights that every step shares, summed over all steps as large
    GEMMs after the reverse loop, and the input gradient: with dA (T*B x GH) the
    pre-activation gradients in X's row order,
    dW_ih = dA^T X (GH x I), dX = dA W_ih (T*B x I), dW_hh = sum_t dA_t^T h_{t-1} (GH x H).
    """
    cdef Py_ssize_t t, b
    # dW_ih = dA^T X: (GH x I) = (T*B x GH)^T (T*B x I)
    gemm(Trans, NoTrans, GH, I, T * B, 1, dA, GH, X, I, 0, dW_ih, I)
    # dX = dA W_ih: (T*B x I) = (T*B x GH)(GH x I)
    gemm(NoTrans, NoTrans, T * B, I, GH, 1, dA, GH, W_ih, I, 0, dX, I)
    # dW_hh: hbuf[0:T] is time-major, so it pairs with dA in one GEMM only when dA is
    # time-major too (or B == 1, where the two orders agree).
    if not batch_first or B == 1:
        # (GH x H) = (T*B x GH)^T (T*B x H)
        gemm(Trans, NoTrans, GH, H, T * B, 1, dA, GH, hbuf, H, 0, dW_hh, H)
    elif T <= B:
        # batch-first, one GEMM per step: (GH x H) += (B x GH)^T (B x H)
        for t in range(T):
            gemm(Trans, NoTrans, GH, H, B, 1, dA + t * GH, T * GH, hbuf + t * B * H, H,
                 0 if t == 0 else 1, dW_hh, H)
    else:
        # batch-first, one GEMM per sequence: (GH x H) += (T x GH)^T (T x H)
        for b in range(B):
            gemm(Trans, NoTrans, GH, H, T, 1, dA + b * T * GH, GH, hbuf + b * H, B * H,
                 0 if b == 0 else 1, dW_hh, H)
