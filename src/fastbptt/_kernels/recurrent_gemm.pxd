# The matrix products that the cells' time loops share (rnn.pyx, lstm.pyx, gru.pyx) and
# that gemm_roofline.pyx makes alone: zero-cost inline helpers, so that every kernel and
# the roofline make exactly the same BLAS calls.
#
# Row order, as in rnn.pyx: a T*B-row matrix (the sequence X, the gate pre-activations
# and their gradients dA) is in x's row order, so one time step is B rows starting at row
# t * ts whose consecutive rows are `rs` rows apart (rs = 1, ts = B time-major; rs = T,
# ts = 1 batch-first). A step's rows of a matrix of `ld` columns are therefore rs * ld
# elements apart: the leading dimensions below. The hidden states live time-major in
# hbuf (T+1, B, H), hbuf[0] = h0.
#
# Step forms. A step's recurrent product, (B x GH) = (B x H)(GH x H)^T, runs in one of
# three forms, chosen once per call by the wrappers (fastbptt._step_form.step_form, where
# the reasons are) and passed to the kernels as an int:
#   STEP_GEMV        one GEMV per row b (W_hh read once a row; no GEMM driver);
#   STEP_TRANSPOSED  the product as its transpose, W_hh h^T (GH x B), into scratch, moved
#                    back through a tiled transpose (transpose.h); backward reads
#                    W_hhT = W_hh^T (H x GH), contiguous;
#   STEP_PLAIN       one GEMM h W_hh^T straight into the step's rows.
# Each helper comes in two layers: *_blas makes the BLAS calls alone (what the roofline
# times), the other adds what the kernels do around them (the transpose back, the rows of
# ended sequences).

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.blas cimport gemm, gemv, NoTrans, Trans
from fastbptt._kernels.transpose cimport transpose


cpdef enum StepForm:
    STEP_GEMV = 0
    STEP_TRANSPOSED = 1
    STEP_PLAIN = 2


cdef inline int check_step_form(int step_form) except -1:
    if step_form != STEP_GEMV and step_form != STEP_TRANSPOSED and step_form != STEP_PLAIN:
        raise ValueError(f"step_form must be STEP_GEMV, STEP_TRANSPOSED or STEP_PLAIN "
                         f"({STEP_GEMV}, {STEP_TRANSPOSED}, {STEP_PLAIN}), got {step_form}")
    return 0


cdef inline floating *step_scratch(int step_form, floating[::1] scratch,
                                   Py_ssize_t size) except? NULL:
    """scratch's data for the transposed form, which needs `size` elements; NULL for the
    other forms, which never read it (the wrappers pass None then). Raises ValueError for
    an unknown step_form or a missing or short scratch, before any BLAS call."""
    check_step_form(step_form)
    if step_form != STEP_TRANSPOSED:
        return NULL
    if scratch is None or scratch.shape[0] < size:
        raise ValueError(f"the transposed step needs scratch of {size} elements, got "
                         f"{None if scratch is None else scratch.shape[0]}")
    return &scratch[0]


cdef inline floating *step_weights_T(int step_form, floating[:, ::1] W_hhT, Py_ssize_t H,
                                     Py_ssize_t GH) except? NULL:
    """W_hhT's data (H x GH), the workspace for W_hh^T in the transposed form of
    backward; NULL for the other forms (the wrappers pass None then). Raises ValueError for a missing or misshapen
    W_hhT."""
    if step_form != STEP_TRANSPOSED:
        return NULL
    if W_hhT is None or W_hhT.shape[0] != H or W_hhT.shape[1] != GH:
        raise ValueError(f"the transposed step needs W_hhT of shape ({H}, {GH})")
    return &W_hhT[0, 0]


cdef inline void input_projection(const floating *X, const floating *W_ih, floating *out,
                                  int ld_out, int TB, int GH, int I) noexcept nogil:
    """out = X W_ih^T: (T*B x GH) = (T*B x I)(GH x I)^T, every step in one GEMM, out's
    rows ld_out apart."""
    gemm(NoTrans, Trans, TB, GH, I, 1, X, I, W_ih, I, 0, out, ld_out)


cdef inline void recurrent_product_blas(const floating *W_hh, const floating *h_prev,
                                        floating *out, Py_ssize_t ld_out, int B, int GH,
                                        int H, floating beta, int step_form,
                                        floating *scratch) noexcept nogil:
    """The BLAS calls of add_recurrent_product: out := beta out + h_prev W_hh^T
    (B x GH) = (B x H)(GH x H)^T for the GEMV and plain forms, out's rows ld_out apart;
    scratch = W_hh h_prev^T (GH x B) for the transposed form, out untouched."""
    cdef Py_ssize_t b
    if step_form == STEP_GEMV:
        # per row b: out[b] := beta out[b] + W_hh h_prev[b]: (GH) = (GH x H)(H)
        for b in range(B):
            gemv(NoTrans, GH, H, 1, W_hh, H, h_prev + b * H, beta, out + b * ld_out)
    elif step_form == STEP_TRANSPOSED:
        # scratch = W_hh h_prev^T: (GH x B) = (GH x H)(B x H)^T
        gemm(NoTrans, Trans, GH, B, H, 1, W_hh, H, h_prev, H, 0, scratch, B)
    else:
        # out := beta out + h_prev W_hh^T: (B x GH) = (B x H)(GH x H)^T
        gemm(NoTrans, Trans, B, GH, H, 1, h_prev, H, W_hh, H, beta, out, <int> ld_out)


cdef inline void add_recurrent_product(const floating *W_hh, const floating *h_prev,
                                       floating *out, Py_ssize_t ld_out, int B, int GH,
                                       int H, floating beta, int step_form,
                                       floating *scratch) noexcept nogil:
    """out := beta out + h_prev W_hh^T: (B x GH) = (B x H)(GH x H)^T, out's rows ld_out
    apart, beta 0 or 1 (1: added into the step's pre-activations, 0: written apart).

    In the transposed form scratch (GH*B) takes the product's transpose, which a tiled
    transpose then adds (beta 1) or writes (beta 0) into out.
    """
    recurrent_product_blas(W_hh, h_prev, out, ld_out, B, GH, H, beta, step_form, scratch)
    if step_form == STEP_TRANSPOSED:
        # out := beta out + scratch^T
        transpose(scratch, GH, B, B, out, ld_out, beta != 0)


cdef inline void recurrent_product_grad_blas(const floating *W_hh, const floating *W_hhT,
                                             const floating *dA_t, Py_ssize_t ld_dA,
                                             floating *carry, int B, int GH, int H,
                                             floating beta, int step_form,
                                             floating *scratch) noexcept nogil:
    """The BLAS calls of recurrent_product_grad: carry := beta carry + dA_t W_hh
    (B x H) = (B x GH)(GH x H) for the GEMV and plain forms, dA_t's rows ld_dA apart (only
    its first GH columns are read); scratch = W_hh^T dA_t^T (H x B) for the transposed
    form, from W_hhT = W_hh^T (H x GH), carry untouched."""
    cdef Py_ssize_t b
    if step_form == STEP_GEMV:
        # per row b: carry[b] := beta carry[b] + W_hh^T dA_t[b]: (H) = (GH x H)^T (GH)
        for b in range(B):
            gemv(Trans, GH, H, 1, W_hh, H, dA_t + b * ld_dA, beta, carry + b * H)
    elif step_form == STEP_TRANSPOSED:
        # scratch = W_hh^T dA_t^T: (H x B) = (H x GH)(B x GH)^T
        gemm(NoTrans, Trans, H, B, GH, 1, W_hhT, GH, dA_t, <int> ld_dA, 0, scratch, B)
    else:
        # carry := beta carry + dA_t W_hh: (B x H) = (B x GH)(GH x H)
        gemm(NoTrans, NoTrans, B, H, GH, 1, dA_t, <int> ld_dA, W_hh, H, beta, carry, H)


cdef inline void recurrent_product_grad(const floating *W_hh, const floating *W_hhT,
                                        const floating *dA_t, Py_ssize_t ld_dA,
                                        floating *carry, int B, int GH, int H,
                                        floating beta, int step_form, floating *scratch,
                                        const Py_ssize_t *lengths, Py_ssize_t t,
                                        floating *hold) noexcept nogil:
    """carry := beta carry + dA_t W_hh: (B x H) = (B x GH)(GH x H), dA_t's rows ld_dA
    apart, beta 0 or 1: the reverse of add_recurrent_product, in the same three forms;
    the transposed form needs W_hhT = W_hh^T contiguous (H x GH) and scratch (H*B).

    With beta = 0 and lengths not NULL, the rows of sequences that have ended
    (t >= lengths[b]) keep their carry: past its length a step is the identity. Their
    rows of dA_t must be zero; hold (B*H) keeps their carry across the GEMM. (With
    beta = 1 zero rows of dA_t leave the carry as it is: pass lengths = NULL.)
    """
    cdef Py_ssize_t b
    cdef bint any_ended = False
    if lengths != NULL:
        for b in range(B):
            if t >= lengths[b]:
                memcpy(hold + b * H, carry + b * H, H * sizeof(floating))
                any_ended = True
    recurrent_product_grad_blas(W_hh, W_hhT, dA_t, ld_dA, carry, B, GH, H, beta,
                                step_form, scratch)
    if step_form == STEP_TRANSPOSED:
        # carry := beta carry + scratch^T
        transpose(scratch, H, B, B, carry, H, beta != 0)
    if any_ended:
        for b in range(B):
            if t >= lengths[b]:
                memcpy(carry + b * H, hold + b * H, H * sizeof(floating))


cdef inline void shared_weight_grads(const floating *X, const floating *W_ih,
                                     const floating *hbuf, const floating *dA, int ld_dA,
                                     floating *dX, floating *dW_ih, floating *dW_hh,
                                     int T, int B, int I, int GH, int H, int split,
                                     int tail, bint batch_first) noexcept nogil:
    """The gradients of the weights that every step shares, summed over all steps as large
    GEMMs after the reverse loop, and the input gradient, from dA (T*B x ld_dA), the
    pre-activation gradients in X's row order.

    dR = dA[:, :GH] is the gradient of the recurrent products h_{t-1} W_hh^T and
    dP = [dA[:, :split] | dA[:, tail : tail + GH - split]] that of the input projections
    x_t W_ih^T. Where a cell adds the two products (RNN, LSTM) they are the same columns:
    split = GH, and dP = dR. The GRU's reset gate multiplies the recurrent product of its
    n gate, so its n block of dP stands apart, at column tail (gru_cell.h):
        dW_ih = dP^T X (GH x I), dX = dP W_ih (T*B x I), dW_hh = sum_t dR_t^T h_{t-1} (GH x H).
    """
    cdef Py_ssize_t t, b
    cdef int rest = GH - split
    # dW_ih[:split] = dP[:, :split]^T X: (split x I) = (T*B x split)^T (T*B x I)
    gemm(Trans, NoTrans, split, I, T * B, 1, dA, ld_dA, X, I, 0, dW_ih, I)
    if rest > 0:
        # dW_ih[split:] = dP[:, split:]^T X: (rest x I) = (T*B x rest)^T (T*B x I)
        gemm(Trans, NoTrans, rest, I, T * B, 1, dA + tail, ld_dA, X, I, 0,
             dW_ih + <Py_ssize_t> split * I, I)
    # dX = dP[:, :split] W_ih[:split]: (T*B x I) = (T*B x split)(split x I)
    gemm(NoTrans, NoTrans, T * B, I, split, 1, dA, ld_dA, W_ih, I, 0, dX, I)
    if rest > 0:
        # dX += dP[:, split:] W_ih[split:]: (T*B x I) += (T*B x rest)(rest x I)
        gemm(NoTrans, NoTrans, T * B, I, rest, 1, dA + tail, ld_dA,
             W_ih + <Py_ssize_t> split * I, I, 1, dX, I)
    # dW_hh: hbuf[0:T] is time-major, so it pairs with dR in one GEMM only when dA is
    # time-major too (or B == 1, where the two orders agree).
    if not batch_first or B == 1:
        # (GH x H) = (T*B x GH)^T (T*B x H)
        gemm(Trans, NoTrans, GH, H, T * B, 1, dA, ld_dA, hbuf, H, 0, dW_hh, H)
    elif T <= B:
        # batch-first, one GEMM per step: (GH x H) += (B x GH)^T (B x H)
        for t in range(T):
            gemm(Trans, NoTrans, GH, H, B, 1, dA + t * ld_dA, T * ld_dA, hbuf + t * B * H, H,
                 0 if t == 0 else 1, dW_hh, H)
    else:
        # batch-first, one GEMM per sequence: (GH x H) += (T x GH)^T (T x H)
        for b in range(B):
            gemm(Trans, NoTrans, GH, H, T, 1, dA + b * T * ld_dA, ld_dA, hbuf + b * H, B * H,
                 0 if b == 0 else 1, dW_hh, H)
