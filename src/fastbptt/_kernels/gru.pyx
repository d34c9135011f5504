# GRU: forward and reverse time loops. PyTorch's gates r, z, n:
#
#   P_t = x_t W_ih^T (+ b_ih)  = [P_r P_z P_n]                  (B x 3H)
#   R_t = h_{t-1} W_hh^T (+ b_hh) = [R_r R_z R_n]              (B x 3H)
#   r = sigmoid(P_r + R_r), z = sigmoid(P_z + R_z), n = tanh(P_n + r R_n)
#   h_t = (1 - z) n + z h_{t-1}
#
# The reset gate acts after the recurrent product, so one GEMM per step serves all three
# gates; the fused element-wise passes and the row layouts of `gates` and `dA` are in
# gru_cell.h.
#
# Row order, as in rnn.pyx. The sequence arrives as one C-contiguous matrix X of T*B rows
# of I columns, time-major (row t*B + b) or batch-first (row b*T + t). The T*B-row
# matrices here (gates, dA, dh, dX) use X's row order, so the input GEMMs run once over
# all steps whatever the layout, and one time step is a B-row matrix starting at row
# t * `ts` whose consecutive rows are `rs` rows apart (rs = 1 time-major, T batch-first;
# ts = B time-major, 1 batch-first). The hidden states live in hbuf (T+1, B, H),
# time-major, hbuf[0] = h0, hbuf[t+1] = h_t.
#
# Variable lengths: with `lengths` (B,) given, sequence b stops after lengths[b] steps. Its
# later steps are the identity on the state (h_t = h_{t-1}, copied over what the step
# computed) and, in reverse, have dA = 0 and leave the carried gradient as it is: the
# step's GEMM adds 0 W_hh = 0 to those rows. The GEMMs still run over all B rows.
#
# The driver (fastbptt.cells.driver, with the adapter fastbptt.cells.gru) validates every
# argument, answers empty problems itself (every size here is at least 1) and allocates
# every buffer; nothing here allocates, touches a Python object inside a loop, or holds the
# GIL.

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.blas cimport one_thread_begin, one_thread_end
from fastbptt._kernels.time_loop cimport begin_backward, ended_row, row_or_null
from fastbptt._kernels.step_packing cimport free_step_weights, pack_step_weights
from fastbptt._kernels.recurrent_gemm cimport (input_grads, input_product, recurrent_product,
                                               recurrent_product_grad, recurrent_weight_grad)

cdef extern from "gru_cell.h" nogil:
    # One row of the forward pass: gates (4H) [P_r P_z P_n .] -> [r z n R_n], h (H)
    void fb_gru_forward_f32(float *gates, const float *R, const float *bias,
                            const float *h_prev, float *h, Py_ssize_t H)
    void fb_gru_forward_f64(double *gates, const double *R, const double *bias,
                            const double *h_prev, double *h, Py_ssize_t H)
    # One row of the backward pass: dA (4H), db (4H) +=, carry (H) := g z; dh may be NULL
    void fb_gru_backward_f32(const float *gates, const float *h_prev, const float *dh,
                             float *carry, float *dA, float *db, Py_ssize_t H)
    void fb_gru_backward_f64(const double *gates, const double *h_prev, const double *dh,
                             double *carry, double *dA, double *db, Py_ssize_t H)


cdef inline void gru_forward_row(floating *gates, const floating *R, const floating *bias,
                                 const floating *h_prev, floating *h,
                                 Py_ssize_t H) noexcept nogil:
    if floating is float:
        fb_gru_forward_f32(gates, R, bias, h_prev, h, H)
    else:
        fb_gru_forward_f64(gates, R, bias, h_prev, h, H)


cdef inline void gru_backward_row(const floating *gates, const floating *h_prev,
                                  const floating *dh, floating *carry, floating *dA,
                                  floating *db, Py_ssize_t H) noexcept nogil:
    if floating is float:
        fb_gru_backward_f32(gates, h_prev, dh, carry, dA, db, H)
    else:
        fb_gru_backward_f64(gates, h_prev, dh, carry, dA, db, H)


def gemm_layout(int H):
    """How this kernel's matrix products sit in its buffers, as gemm_roofline's
    recurrent_gemms takes them (tests/test_gemm_calls.py holds the two together): dP =
    dA's columns [0, front) + [back, 4H) = [da_r da_z | da_n] (gru_cell.h's dA layout),
    and the step's product goes into a buffer of its own, R (own_product True: the reset
    gate multiplies R_n), so backward's carry accumulates onto the cell pass's direct part.
    """
    return {"front": 2 * H, "back": 3 * H, "own_product": True}


def gru_forward(*, const floating[:, ::1] X, const floating[::1] bias,
                floating[:, ::1] gates, floating[:, :, ::1] hbuf, floating[:, ::1] R,
                floating[::1] scratch, object args, bint transposed_step,
                bint packed=False):
    """Fill hbuf[1:] with h_1..h_T (hbuf[0] holds h0 on entry) and gates (T*B, 4H) with
    every step's [r z n R_n] for backward. R (B, 3H) is workspace, scratch (3H*B) too
    (used when transposed_step). bias (4H) = [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]; the
    weights, the layout and the lengths (see the top of this file) come in args.
    """
    # the weights and options from args (a cells.args.CellArgs): one struct instead of
    # more keywords to parse on every call
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef bint batch_first = args.batch_first
    # scratch is allocated (and read) only for the transposed step
    with nogil:
        gru_forward_loop(X=&X[0, 0], bias=&bias[0], gates=&gates[0, 0], hbuf=&hbuf[0, 0, 0],
                         R=&R[0, 0], scratch=&scratch[0] if transposed_step else NULL,
                         W_ih=&W_ih[0, 0], W_hh=&W_hh[0, 0],
                         lens=&lengths[0] if lengths is not None else NULL,
                         T=hbuf.shape[0] - 1, B=hbuf.shape[1], I=X.shape[1], H=hbuf.shape[2],
                         batch_first=batch_first, transposed_step=transposed_step, packed=packed)


cdef void gru_forward_loop(const floating *X, const floating *bias, floating *gates,
                           floating *hbuf, floating *R, floating *scratch,
                           const floating *W_ih, const floating *W_hh,
                           const Py_ssize_t *lens, int T, int B, int I, int H,
                           bint batch_first, bint transposed_step, bint packed) noexcept nogil:
    """gru_forward's time loops on its buffers' first elements (C-contiguous, shapes as
    there; scratch and lens may be NULL): the entry point the driver's fast path
    (cells/_fastpath.pyx) calls with no buffers to acquire."""
    cdef int G = 3 * H, ldg = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1   # rows between steps
    cdef Py_ssize_t rs = 1 if not batch_first else T   # rows between sequences
    cdef Py_ssize_t t, b
    cdef Py_ssize_t BH = <Py_ssize_t>B * H             # one time slice of hbuf
    cdef floating *gates_t
    cdef floating *h_prev
    cdef floating *h_t
    cdef int saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
    # W_hh^T packed once for all T steps (step_packing.pxd; NULL if out of memory: the
    # unpacked form)
    cdef floating *W_packed = pack_step_weights(W_hh, G, H, B, False) if packed else NULL
    # gates[:, :3H] = X W_ih^T: (T*B x 3H) = (T*B x I)(3H x I)^T, every step in one
    # GEMM, rows 4H apart (the fourth block is filled with R_n step by step)
    input_product(X, W_ih, gates, ldg, T * B, G, I)
    for t in range(T):
        gates_t = gates + t * ts * ldg
        h_prev = hbuf + t * BH
        h_t = hbuf + (t + 1) * BH
        # R = h_{t-1} W_hh^T: (B x 3H) = (B x H)(3H x H)^T, into its own buffer
        # (beta 0): the reset gate multiplies R_n before it meets P_n
        recurrent_product(W_hh, h_prev, 0, R, G, B, G, H, transposed_step, scratch,
                          W_packed)
        # gates and h_t from P_t, R, the biases; past a sequence's length h_t = h_{t-1}
        for b in range(B):
            gru_forward_row(gates_t + b * rs * ldg, R + b * G, bias, h_prev + b * H,
                            h_t + b * H, H)
            if lens != NULL and t >= lens[b]:
                memcpy(h_t + b * H, h_prev + b * H, H * sizeof(floating))
    free_step_weights(W_packed)
    one_thread_end(saved)


def gru_backward(*, const floating[:, ::1] X, const floating[:, ::1] dh, object states,
                 object kept, object carries, object args, object work,
                 bint transposed_step, bint packed=False):
    """Reverse time loop. carry (B, H) holds dL/dh_T from outside (dh_n, or zeros) on
    entry and dL/dh_0 on exit. dh (T*B, H, in X's row order) is the gradient arriving at
    every step, or None. dA (T*B, 4H) is workspace (layout in gru_cell.h); dX, dW_ih,
    dW_hh are overwritten; db (4H) is overwritten with the column sums of dA:
    db_hh = db[:3H], db_ih = db[:2H] + db[3H:]. With transposed_step, W_hhT (H, 3H) and
    scratch (H*B) are workspace (W_hhT is filled with W_hh^T here). lengths (B,) or None.
    """
    # the weights and options from args (a cells.args.CellArgs), the buffers from work (a
    # cells.driver.BackwardBuffers): one struct each instead of 17 keywords to parse;
    # states [hbuf], kept the [r z n R_n] gates, carries [carry] as the driver holds them
    cdef const floating[:, :, ::1] hbuf = states[0]
    cdef const floating[:, ::1] gates = kept
    cdef floating[:, ::1] carry = carries[0]
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef bint batch_first = args.batch_first
    cdef floating[:, ::1] dA = work.dA, dX = work.dX, dW_ih = work.dW_ih
    cdef floating[:, ::1] dW_hh = work.dW_hh, W_hhT = work.W_hhT
    cdef floating[::1] db = work.db, scratch = work.scratch
    # scratch and W_hhT are allocated (and read) only for the transposed step
    with nogil:
        gru_backward_loop(X=&X[0, 0], dh=&dh[0, 0] if dh is not None else NULL,
                          hbuf=&hbuf[0, 0, 0], gates=&gates[0, 0], carry=&carry[0, 0],
                          W_ih=&W_ih[0, 0], W_hh=&W_hh[0, 0],
                          lens=&lengths[0] if lengths is not None else NULL, dA=&dA[0, 0],
                          dX=&dX[0, 0], dW_ih=&dW_ih[0, 0], dW_hh=&dW_hh[0, 0], db=&db[0],
                          W_hhT=&W_hhT[0, 0] if transposed_step else NULL,
                          scratch=&scratch[0] if transposed_step else NULL,
                          T=hbuf.shape[0] - 1, B=hbuf.shape[1], I=X.shape[1],
                          H=hbuf.shape[2], batch_first=batch_first,
                          transposed_step=transposed_step, packed=packed)


cdef void gru_backward_loop(const floating *X, const floating *dh, const floating *hbuf,
                            const floating *gates, floating *carry, const floating *W_ih,
                            const floating *W_hh, const Py_ssize_t *lens, floating *dA,
                            floating *dX, floating *dW_ih, floating *dW_hh, floating *db,
                            floating *W_hhT, floating *scratch, int T, int B, int I, int H,
                            bint batch_first, bint transposed_step, bint packed) noexcept nogil:
    """gru_backward's time loops on its buffers' first elements (C-contiguous, shapes as
    there; dh, lens, W_hhT and scratch may be NULL): the entry point the driver's fast
    path (cells/_fastpath.pyx) calls with no buffers to acquire."""
    cdef int G = 3 * H, lda = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1
    cdef Py_ssize_t rs = 1 if not batch_first else T
    cdef Py_ssize_t t, b
    cdef Py_ssize_t BH = <Py_ssize_t>B * H             # one time slice of hbuf
    cdef floating *dA_t
    cdef const floating *gates_t
    cdef const floating *dh_t
    cdef int saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
    # W_hh packed once for all T steps (step_packing.pxd; NULL if out of memory: the
    # unpacked form)
    cdef floating *W_packed = pack_step_weights(W_hh, G, H, B, True) if packed else NULL
    # db = 0 (4H); W_hhT = W_hh^T (H x 3H) for the transposed per-step GEMM
    begin_backward(db, lda, W_hh, W_hhT, G, H, transposed_step)
    for t in range(T - 1, -1, -1):
        dA_t = dA + t * ts * lda
        gates_t = gates + t * ts * lda
        # dA_t rows and carry := g z (the part of dL/dh_{t-1} that skips W_hh), from
        # g = carry + dh_t; db += dA_t rows
        for b in range(B):
            if ended_row(lens, t, b, dA_t + b * rs * lda, lda):
                continue   # dA = 0; its carry passes through unchanged
            dh_t = row_or_null(dh, t * ts + b * rs, H)
            gru_backward_row(gates_t + b * rs * lda, hbuf + t * BH + b * H, dh_t,
                             carry + b * H, dA_t + b * rs * lda, db, H)
        # carry += dR_t W_hh: (B x H) += (B x 3H)(3H x H), dR_t = dA_t[:, :3H] with
        # rows rs*4H apart (beta 1: carry holds g z, the part that skips W_hh; the
        # zero rows of ended sequences add nothing, so no lengths here)
        recurrent_product_grad(W_hh, W_hhT, dA_t, rs * lda, 1, carry, B, G, H,
                               transposed_step, scratch, NULL, t, NULL, W_packed)

    # The shared parameters' gradients, summed over all steps, as large GEMMs. dP is
    # dA's columns [0, 2H) (r, z) and [3H, 4H) (n): dW_ih = dP^T X, dX = dP W_ih, two
    # GEMMs each (one per block of dP).
    input_grads(X, W_ih, dA, lda, dX, dW_ih, T * B, I, 2 * H, 3 * H)
    # dW_hh = sum_t dR_t^T h_{t-1}: (3H x H)
    recurrent_weight_grad(hbuf, dA, lda, dW_hh, T, B, G, H, batch_first)
    free_step_weights(W_packed)
    one_thread_end(saved)
