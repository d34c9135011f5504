# The matrix products that every cell's time loops make, inlined into the kernels that
# cimport them (rnn.pyx, lstm.pyx, gru.pyx) and into gemm_roofline.pyx, which makes the
# same calls with nothing between them (tests/test_gemm_calls.py holds them together).
#
# Row order (the convention of every kernel): a T*B-row matrix (the sequence X, the gate
# pre-activations P and their gradients dA) is in x's row order, so one time step is B
# rows starting at row t * ts whose consecutive rows are `rs` rows apart (rs = 1, ts = B
# time-major; rs = T, ts = 1 batch-first). The hidden states live time-major in hbuf
# (T+1, B, H), hbuf[0] = h0.
#
# Leading dimensions: a gate buffer's row may be longer than the GH = G*H columns of the
# recurrent product (the GRU keeps 4H columns, [r z n R_n], against W_hh's 3H rows), so
# each helper takes the distance between the rows it reads or writes (ldp, lda) rather
# than deriving it from GH. beta is 0 (overwrite) or 1 (accumulate), nothing else: the
# transposed form adds its result back through a transpose that only overwrites or adds.

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.blas cimport gemm, gemv, NoTrans, Trans
from fastbptt._kernels.step_packing cimport packed_step
from fastbptt._kernels.transpose cimport transpose


# Up to this many rows, the per-step products that are not packed (W_packed NULL) run as
# one GEMV per row: OpenBLAS's GEMM driver (packing, blocking) costs microseconds per call
# that a few rows do not pay back (bench/RESULTS.md, "GEMV rows"); from
# spec.packed_min_steps(B) steps on such calls pack (spec.step_form). fastbptt.cells.spec.
# GEMV_ROWS must agree (tests/test_spec.py).
cdef enum:
    GEMV_ROWS = 4


cdef inline void input_product(const floating *X, const floating *W_ih, floating *P,
                               int ldp, int TB, int GH, int I) noexcept nogil:
    """P[:, :GH] = X W_ih^T for every step at once: (T*B x GH) = (T*B x I)(GH x I)^T,
    P's rows ldp apart (its columns past GH are left as they are)."""
    gemm(NoTrans, Trans, TB, GH, I, 1, X, I, W_ih, I, 0, P, ldp)


cdef inline void recurrent_product(const floating *W_hh, const floating *h_prev,
                                   floating beta, floating *P_t, Py_ssize_t ldp, int B,
                                   int GH, int H, bint transposed, floating *scratch,
                                   const floating *W_packed) noexcept nogil:
    """P_t = beta P_t + h_prev W_hh^T: (B x GH) = (B x H)(GH x H)^T, P_t's rows ldp apart,
    beta 0 or 1.

    W_packed not NULL (W_hh^T packed by step_packing.pack_step_weights for this call)
    runs the packed product, whatever the other flags say. B <= GEMV_ROWS runs one GEMV
    per row. transposed runs the same product as its
    transpose into scratch (GH*B), then writes or adds that back through a tiled
    transpose: OpenBLAS tiles its output's columns by its micro-kernel width, so with few
    rows B against many columns GH the transposed GEMM is faster (the policy is
    fastbptt.cells.spec.step_form).
    """
    cdef Py_ssize_t b
    if W_packed != NULL:
        # P_t = beta P_t + h_prev (W_hh^T packed): (B x GH) = (B x H)(H x GH)
        packed_step(h_prev, H, W_packed, beta, P_t, ldp, B, GH, H)
    elif B <= GEMV_ROWS:
        # per row b: P_t[b] = beta P_t[b] + W_hh h_prev[b]: (GH) = (GH x H)(H)
        for b in range(B):
            gemv(NoTrans, GH, H, 1, W_hh, H, h_prev + b * H, beta, P_t + b * ldp)
    elif transposed:
        # scratch = W_hh h_prev^T: (GH x B) = (GH x H)(B x H)^T;  P_t (+)= scratch^T
        gemm(NoTrans, Trans, GH, B, H, 1, W_hh, H, h_prev, H, 0, scratch, B)
        transpose(scratch, GH, B, B, P_t, ldp, beta != 0)
    else:
        # P_t = beta P_t + h_prev W_hh^T: (B x GH) = (B x H)(GH x H)^T
        gemm(NoTrans, Trans, B, GH, H, 1, h_prev, H, W_hh, H, beta, P_t, <int> ldp)


cdef inline void recurrent_product_grad(const floating *W_hh, const floating *W_hhT,
                                        const floating *dA_t, Py_ssize_t lda,
                                        floating beta, floating *carry, int B, int GH,
                                        int H, bint transposed, floating *scratch,
                                        const Py_ssize_t *lengths, Py_ssize_t t,
                                        floating *hold,
                                        const floating *W_packed) noexcept nogil:
    """carry = beta carry + dA_t[:, :GH] W_hh: (B x H) = (B x GH)(GH x H), dA_t's rows lda
    apart, beta 0 or 1.

    With beta = 0 and lengths not NULL, the rows of sequences that have ended
    (t >= lengths[b]) keep their carry (past its length a step is the identity): their
    rows of dA_t must be zero, and hold (B*H) keeps their carry across the GEMM. With
    beta = 1 pass lengths NULL: zero rows of dA_t add nothing to the carry.

    The reverse of recurrent_product, in the same four forms; transposed needs
    W_hhT = W_hh^T contiguous (H x GH) and scratch (H*B); W_packed is W_hh packed by
    step_packing.pack_step_weights (backward) for this call, or NULL.
    """
    cdef Py_ssize_t b
    cdef bint any_ended = False
    if lengths != NULL:
        for b in range(B):
            if t >= lengths[b]:
                memcpy(hold + b * H, carry + b * H, H * sizeof(floating))
                any_ended = True
    if W_packed != NULL:
        # carry = beta carry + dA_t (W_hh packed): (B x H) = (B x GH)(GH x H)
        packed_step(dA_t, lda, W_packed, beta, carry, H, B, H, GH)
    elif B <= GEMV_ROWS:
        # per row b: carry[b] = beta carry[b] + W_hh^T dA_t[b]: (H) = (GH x H)^T (GH)
        for b in range(B):
            gemv(Trans, GH, H, 1, W_hh, H, dA_t + b * lda, beta, carry + b * H)
    elif transposed:
        # scratch = W_hh^T dA_t^T: (H x B) = (H x GH)(B x GH)^T;  carry (+)= scratch^T
        gemm(NoTrans, Trans, H, B, GH, 1, W_hhT, GH, dA_t, <int> lda, 0, scratch, B)
        transpose(scratch, H, B, B, carry, H, beta != 0)
    else:
        # carry = beta carry + dA_t W_hh: (B x H) = (B x GH)(GH x H)
        gemm(NoTrans, NoTrans, B, H, GH, 1, dA_t, <int> lda, W_hh, H, beta, carry, H)
    if any_ended:
        for b in range(B):
            if t >= lengths[b]:
                memcpy(carry + b * H, hold + b * H, H * sizeof(floating))


cdef inline void input_grads(const floating *X, const floating *W_ih, const floating *dA,
                             int lda, floating *dX, floating *dW_ih, int TB, int I,
                             int front, int back) noexcept nogil:
    """The gradients of the input projection P = X W_ih^T, summed over all steps: dP
    (T*B x GH) is dA's first `front` columns followed by its columns [back, lda)
    (back == lda: dP is the first GH = front columns; the GRU's dA [da_r da_z da_n r
    da_n] has dP = [da_r da_z | da_n], front = 2H, back = 3H). Then
    dW_ih = dP^T X (GH x I), dX = dP W_ih (T*B x I), each as one GEMM per block of dP.
    """
    cdef int nback = lda - back
    # dW_ih[:front] = dP_front^T X: (front x I) = (T*B x front)^T (T*B x I)
    gemm(Trans, NoTrans, front, I, TB, 1, dA, lda, X, I, 0, dW_ih, I)
    if nback:
        # dW_ih[front:] = dP_back^T X: (nback x I) = (T*B x nback)^T (T*B x I)
        gemm(Trans, NoTrans, nback, I, TB, 1, dA + back, lda, X, I, 0, dW_ih + front * I, I)
    # dX = dP_front W_ih[:front]: (T*B x I) = (T*B x front)(front x I)
    gemm(NoTrans, NoTrans, TB, I, front, 1, dA, lda, W_ih, I, 0, dX, I)
    if nback:
        # dX += dP_back W_ih[front:]: (T*B x I) += (T*B x nback)(nback x I)
        gemm(NoTrans, NoTrans, TB, I, nback, 1, dA + back, lda, W_ih + front * I, I,
             1, dX, I)


cdef inline void recurrent_weight_grad(const floating *hbuf, const floating *dA, int lda,
                                       floating *dW_hh, int T, int B, int GH, int H,
                                       bint batch_first) noexcept nogil:
    """dW_hh = sum_t dA_t[:, :GH]^T h_{t-1}: (GH x H), dA's rows lda apart.

    hbuf[0:T] is time-major, so it pairs with dA in one GEMM only when dA is time-major
    too (or B == 1, where the two orders agree); batch-first, one GEMM per step or per
    sequence, whichever makes fewer calls.
    """
    cdef Py_ssize_t t, b
    if not batch_first or B == 1:
        # (GH x H) = (T*B x GH)^T (T*B x H)
        gemm(Trans, NoTrans, GH, H, T * B, 1, dA, lda, hbuf, H, 0, dW_hh, H)
    elif T <= B:
        # batch-first, one GEMM per step: (GH x H) += (B x GH)^T (B x H)
        for t in range(T):
            gemm(Trans, NoTrans, GH, H, B, 1, dA + t * lda, T * lda, hbuf + t * B * H, H,
                 0 if t == 0 else 1, dW_hh, H)
    else:
        # batch-first, one GEMM per sequence: (GH x H) += (T x GH)^T (T x H)
        for b in range(B):
            gemm(Trans, NoTrans, GH, H, T, 1, dA + b * T * lda, lda, hbuf + b * H, B * H,
                 0 if b == 0 else 1, dW_hh, H)


cdef inline void shared_weight_grads(const floating *X, const floating *W_ih,
                                     const floating *hbuf, const floating *dA,
                                     floating *dX, floating *dW_ih, floating *dW_hh,
                                     int T, int B, int I, int GH, int H,
                                     bint batch_first) noexcept nogil:
    """The gradients of the weights that every step shares, as large GEMMs after the
    reverse loop, for a cell whose dA (T*B x GH) is the gradient of both products:
    dW_ih = dA^T X (GH x I), dX = dA W_ih (T*B x I), dW_hh = sum_t dA_t^T h_{t-1} (GH x H).
    """
    input_grads(X, W_ih, dA, GH, dX, dW_ih, T * B, I, GH, GH)
    recurrent_weight_grad(hbuf, dA, GH, dW_hh, T, B, GH, H, batch_first)
