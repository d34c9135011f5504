# Vanilla (Elman) RNN: forward and reverse time loops.
#
#   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh        (B x H)
#   h_t = f(a_t)
#
# Row order. The sequence arrives as one C-contiguous matrix X of T*B rows of I columns,
# time-major (row t*B + b) or batch-first (row b*T + t). Every T*B-row matrix here (the
# projections P, the pre-activation gradients dA, dh, dX) uses the same order as X, so the
# input GEMMs run once over all steps whatever the layout, and one time step is a B-row
# matrix starting at row t * `ts` whose consecutive rows are `rs` rows apart (rs = 1
# time-major, T batch-first; ts = B time-major, 1 batch-first). The hidden states live in
# hbuf (T+1, B, H), time-major, hbuf[0] = h0, hbuf[t+1] = h_t: the memory of backward and
# the source of the output.
#
# Variable lengths: with `lengths` (B,) given, sequence b stops after lengths[b] steps. Its
# later steps are the identity on the state (h_t = h_{t-1}, copied over what the step
# computed) and, in reverse, pass the carried gradient through unchanged with dA = 0, so
# nothing past a length reaches a gradient. The GEMMs still run over all B rows: masking
# after them is cheaper than packing the batch per step at the sizes this serves.
#
# The driver (fastbptt.cells.driver, with the adapter fastbptt.cells.rnn) validates every
# argument, answers empty problems itself (every size here is at least 1) and allocates
# every buffer; nothing here allocates, touches a Python object inside a loop, or holds the
# GIL.

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.blas cimport one_thread_begin, one_thread_end
from fastbptt._kernels.activations cimport activate, activate_grad, accumulate
from fastbptt._kernels.time_loop cimport begin_backward, ended_row, row_or_null
from fastbptt._kernels.step_packing cimport free_step_weights, pack_step_weights
from fastbptt._kernels.recurrent_gemm cimport (GEMV_ROWS, input_product, recurrent_product,
                                               recurrent_product_grad, shared_weight_grads)

# For the wrappers, which skip W_hh^T where the per-row GEMVs make the step (all cells
# share recurrent_gemm.pxd's GEMV_ROWS).
GEMV_ROWS_PER_STEP = GEMV_ROWS


def gemm_layout(int H):
    """How this kernel's matrix products sit in its buffers, as gemm_roofline's
    recurrent_gemms takes them (tests/test_gemm_calls.py holds the two together): dA
    (T*B x H) is the gradient of both products (dP = dA's columns [0, front) + [back, H)
    = dA), and the step's product is added into P_t (own_product False).
    """
    return {"front": H, "back": H, "own_product": False}


def rnn_forward(*, const floating[:, ::1] X, const floating[::1] bias, floating[:, ::1] P,
                floating[:, :, ::1] hbuf, floating[::1] scratch, object args,
                bint transposed_step, bint packed=False):
    """Fill hbuf[1:] with h_1..h_T; hbuf[0] holds h0 on entry. P (T*B, H) is workspace,
    scratch (H*B) too (only for transposed_step; None otherwise). packed: the per-step
    products run on W_hh packed once here (step_packing.pxd). P may be hbuf[1:]
    itself when time-major: step t reads only its own rows of P before writing h_t over them.
    bias = b_ih + b_hh (H,). args brings the weights, the nonlinearity's code, the layout
    and the lengths (see the top of this file).
    """
    # the weights and options from args (a cells.args.CellArgs): a call with 18 keywords
    # pays for parsing them on every call; attributes of one struct cost next to nothing
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef int nonlinearity = args.code
    cdef bint batch_first = args.batch_first
    # scratch is allocated (and read) only for the transposed step
    with nogil:
        rnn_forward_loop(X=&X[0, 0], bias=&bias[0], P=&P[0, 0], hbuf=&hbuf[0, 0, 0],
                         scratch=&scratch[0] if transposed_step else NULL,
                         W_ih=&W_ih[0, 0], W_hh=&W_hh[0, 0],
                         lens=&lengths[0] if lengths is not None else NULL,
                         nonlinearity=nonlinearity, T=hbuf.shape[0] - 1, B=hbuf.shape[1],
                         I=X.shape[1], H=hbuf.shape[2], batch_first=batch_first,
                         transposed_step=transposed_step, packed=packed)


cdef void rnn_forward_loop(const floating *X, const floating *bias, floating *P,
                           floating *hbuf, floating *scratch, const floating *W_ih,
                           const floating *W_hh, const Py_ssize_t *lens, int nonlinearity,
                           int T, int B, int I, int H, bint batch_first,
                           bint transposed_step, bint packed) noexcept nogil:
    """rnn_forward's time loops on its buffers' first elements (C-contiguous, shapes as
    there; scratch and lens may be NULL): the entry point the driver's fast path
    (cells/_fastpath.pyx) calls with no buffers to acquire."""
    cdef Py_ssize_t ts = B if not batch_first else 1   # rows between steps
    cdef Py_ssize_t rs = 1 if not batch_first else T   # rows between sequences
    cdef Py_ssize_t t, b
    cdef Py_ssize_t BH = <Py_ssize_t>B * H             # one time slice of hbuf
    cdef floating *P_t
    cdef floating *h_prev
    cdef floating *h_t
    cdef int saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
    # W_hh^T packed once for all T steps (step_packing.pxd; NULL if out of memory: the
    # unpacked form)
    cdef floating *W_packed = pack_step_weights(W_hh, H, H, B, False) if packed else NULL
    # P = X W_ih^T: (T*B x H) = (T*B x I)(H x I)^T, every step in one GEMM
    input_product(X, W_ih, P, H, T * B, H, I)
    for t in range(T):
        P_t = P + t * ts * H
        h_prev = hbuf + t * BH
        h_t = hbuf + (t + 1) * BH
        # P_t += h_{t-1} W_hh^T: (B x H) += (B x H)(H x H)^T, rows rs*H apart
        recurrent_product(W_hh, h_prev, 1, P_t, rs * H, B, H, H, transposed_step, scratch,
                          W_packed)
        # h_t = f(P_t + b_ih + b_hh); past a sequence's length, h_t = h_{t-1}
        for b in range(B):
            activate(nonlinearity, P_t + b * rs * H, bias, h_t + b * H, H)
            if lens != NULL and t >= lens[b]:
                memcpy(h_t + b * H, h_prev + b * H, H * sizeof(floating))
    free_step_weights(W_packed)
    one_thread_end(saved)


def rnn_backward(*, const floating[:, ::1] X, const floating[:, ::1] dh, object states,
                 object kept, object carries, object args, object work,
                 bint transposed_step, bint packed=False):
    """Reverse time loop. carry (B, H) holds dL/dh_T from outside (dh_n, or zeros) on
    entry and dL/dh_0 on exit. dh (T*B, H, in X's row order) is the gradient arriving at
    every step, or None. dA (T*B, H) is workspace; dX, dW_ih, dW_hh, db are overwritten.
    db is the gradient of b_ih and of b_hh alike. With transposed_step, W_hhT (H, H) and
    scratch (H*B) are workspace (W_hhT is filled with W_hh^T here). lengths (B,) or None:
    see the top of this file; hold (B, H) is workspace when lengths is given (the carried
    rows of sequences that have ended, kept across the step's GEMM).
    """
    # the weights and options from args (a cells.args.CellArgs), the buffers from work (a
    # cells.driver.BackwardBuffers): one struct each instead of 18 keywords to parse;
    # states [hbuf] and carries [carry] as the driver holds them (kept is None here)
    cdef const floating[:, :, ::1] hbuf = states[0]
    cdef floating[:, ::1] carry = carries[0]
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef int nonlinearity = args.code
    cdef bint batch_first = args.batch_first
    cdef floating[:, ::1] dA = work.dA, dX = work.dX, dW_ih = work.dW_ih
    cdef floating[:, ::1] dW_hh = work.dW_hh, W_hhT = work.W_hhT, hold = work.hold
    cdef floating[::1] db = work.db, scratch = work.scratch
    # scratch and W_hhT are allocated (and read) only for the transposed step, hold only
    # with lengths
    with nogil:
        rnn_backward_loop(X=&X[0, 0], dh=&dh[0, 0] if dh is not None else NULL,
                          hbuf=&hbuf[0, 0, 0], carry=&carry[0, 0], W_ih=&W_ih[0, 0],
                          W_hh=&W_hh[0, 0], lens=&lengths[0] if lengths is not None else NULL,
                          nonlinearity=nonlinearity, dA=&dA[0, 0], dX=&dX[0, 0],
                          dW_ih=&dW_ih[0, 0], dW_hh=&dW_hh[0, 0], db=&db[0],
                          W_hhT=&W_hhT[0, 0] if transposed_step else NULL,
                          scratch=&scratch[0] if transposed_step else NULL,
                          hold=&hold[0, 0] if hold is not None else NULL,
                          T=hbuf.shape[0] - 1, B=hbuf.shape[1], I=X.shape[1],
                          H=hbuf.shape[2], batch_first=batch_first,
                          transposed_step=transposed_step, packed=packed)


cdef void rnn_backward_loop(const floating *X, const floating *dh, const floating *hbuf,
                            floating *carry, const floating *W_ih, const floating *W_hh,
                            const Py_ssize_t *lens, int nonlinearity, floating *dA,
                            floating *dX, floating *dW_ih, floating *dW_hh, floating *db,
                            floating *W_hhT, floating *scratch, floating *hold, int T, int B,
                            int I, int H, bint batch_first,
                            bint transposed_step, bint packed) noexcept nogil:
    """rnn_backward's time loops on its buffers' first elements (C-contiguous, shapes as
    there; dh, lens, W_hhT, scratch and hold may be NULL): the entry point the driver's
    fast path (cells/_fastpath.pyx) calls with no buffers to acquire."""
    cdef Py_ssize_t ts = B if not batch_first else 1
    cdef Py_ssize_t rs = 1 if not batch_first else T
    cdef Py_ssize_t t, b
    cdef Py_ssize_t BH = <Py_ssize_t>B * H             # one time slice of hbuf
    cdef floating *dA_t
    cdef const floating *dh_t
    cdef int saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
    # W_hh packed once for all T steps (step_packing.pxd; NULL if out of memory: the
    # unpacked form)
    cdef floating *W_packed = pack_step_weights(W_hh, H, H, B, True) if packed else NULL
    # db = 0; W_hhT = W_hh^T (H x H) for the transposed per-step GEMM
    begin_backward(db, H, W_hh, W_hhT, H, H, transposed_step)
    for t in range(T - 1, -1, -1):
        dA_t = dA + t * ts * H
        # dA_t = (carry + dh_t) * f'(a_t): the gradient reaching h_t from step t+1 and
        # from the loss at step t, through the nonlinearity; db += the rows of dA_t
        # (db = column sums of dA), while they are in L1
        for b in range(B):
            if ended_row(lens, t, b, dA_t + b * rs * H, H):
                continue   # dA = 0; its carry is kept across the GEMM below
            dh_t = row_or_null(dh, t * ts + b * rs, H)
            activate_grad(nonlinearity, hbuf + (t + 1) * BH + b * H, carry + b * H, dh_t,
                          dA_t + b * rs * H, H)
            accumulate(db, dA_t + b * rs * H, H)
        # carry = dL/dh_{t-1} = dA_t W_hh: (B x H) = (B x H)(H x H), dA_t's rows rs*H
        # apart; the rows of ended sequences keep theirs
        recurrent_product_grad(W_hh, W_hhT, dA_t, rs * H, 0, carry, B, H, H,
                               transposed_step, scratch, lens, t, hold, W_packed)

    # dW_ih = dA^T X, dX = dA W_ih, dW_hh = sum_t dA_t^T h_{t-1}, as large GEMMs
    shared_weight_grads(X, W_ih, hbuf, dA, dX, dW_ih, dW_hh, T, B, I, H, H, batch_first)
    free_step_weights(W_packed)
    one_thread_end(saved)
