# LSTM: forward and reverse time loops. Gate blocks in PyTorch's order i, f, g, o:
#
#   z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh              (B x 4H), blocks [i f g o]
#   i, f, o = sigmoid(z_i, z_f, z_o),  g = tanh(z_g)
#   c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)                     (B x H)
#
# Row order, as in rnn.pyx: the sequence is one C-contiguous matrix X of T*B rows of I,
# time-major (row t*B + b) or batch-first (row b*T + t), and every T*B-row matrix here
# (the gates, their gradients dA, dh, dX) uses X's order, so the input GEMMs run once
# over all steps whatever the layout; a step is B rows from row t * ts, `rs` rows apart
# (rs = 1, ts = B time-major; rs = T, ts = 1 batch-first). The states live time-major in
# hbuf and cbuf (T+1, B, H), [0] the initial state, [t+1] the state after step t.
#
# What forward keeps for backward: the activated gates (T*B x 4H, written over the
# pre-activations), hbuf and cbuf. Backward recomputes tanh(c_t) (cheaper than storing it).
#
# Variable lengths: with `lengths` (B,) given, sequence b stops after lengths[b] steps.
# Its later steps are the identity on the state (h and c copied from the step before,
# the cell pass skipped) and, in reverse, have dA = 0 and pass both carried gradients
# through unchanged. The GEMMs still run over all B rows: masking around them is cheaper
# than packing the batch per step at the sizes this serves.
#
# The driver (fastbptt.cells.driver, with the adapter fastbptt.cells.lstm) validates every
# argument, answers empty problems itself (every size here is at least 1) and allocates
# every buffer; nothing here allocates, touches a Python object inside a loop, or holds the
# GIL.

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.blas cimport one_thread_begin, one_thread_end
from fastbptt._kernels.time_loop cimport begin_backward, ended_row, row_or_null
from fastbptt._kernels.step_packing cimport free_step_weights, pack_step_weights
from fastbptt._kernels.recurrent_gemm cimport (input_product, recurrent_product,
                                               recurrent_product_grad, shared_weight_grads)

# The fused element-wise passes over one batch row (the math is in lstm_cell.h), declared
# once in lstm_cell.pxd for this kernel and the projected one (lstmp.pyx).
from fastbptt._kernels.lstm_cell cimport lstm_cell_backward as cell_backward
from fastbptt._kernels.lstm_cell cimport lstm_cell_forward as cell_forward


def gemm_layout(int H):
    """How this kernel's matrix products sit in its buffers, as gemm_roofline's
    recurrent_gemms takes them (tests/test_gemm_calls.py holds the two together): dA
    (T*B x 4H) is the gradient of both products (dP = dA's columns [0, front) +
    [back, 4H) = dA), and the step's product is added into the gates' rows (own_product
    False).
    """
    return {"front": 4 * H, "back": 4 * H, "own_product": False}


def lstm_forward(*, const floating[:, ::1] X, const floating[::1] bias,
                 floating[:, ::1] gates, floating[:, :, ::1] hbuf, floating[:, :, ::1] cbuf,
                 floating[::1] scratch, object args, bint transposed_step,
                 bint packed=False):
    """Fill hbuf[1:] and cbuf[1:] with the states after every step; hbuf[0] and cbuf[0]
    hold h0 and c0 on entry. gates (T*B, 4H) receives the activated gates (the
    pre-activations of steps past a sequence's length stay as they are, unused).
    scratch (4H*B) is workspace for the transposed step. bias = b_ih + b_hh (4H,). args
    brings the weights, the layout and the lengths (see the top of this file).
    """
    # the weights and options from args (a cells.args.CellArgs): one struct instead of
    # more keywords to parse on every call
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef bint batch_first = args.batch_first
    # scratch is allocated (and read) only for the transposed step
    with nogil:
        lstm_forward_loop(X=&X[0, 0], bias=&bias[0], gates=&gates[0, 0],
                          hbuf=&hbuf[0, 0, 0], cbuf=&cbuf[0, 0, 0],
                          scratch=&scratch[0] if transposed_step else NULL,
                          W_ih=&W_ih[0, 0], W_hh=&W_hh[0, 0],
                          lens=&lengths[0] if lengths is not None else NULL,
                          T=hbuf.shape[0] - 1, B=hbuf.shape[1], I=X.shape[1], H=hbuf.shape[2],
                          batch_first=batch_first, transposed_step=transposed_step, packed=packed)


cdef void lstm_forward_loop(const floating *X, const floating *bias, floating *gates,
                            floating *hbuf, floating *cbuf, floating *scratch,
                            const floating *W_ih, const floating *W_hh,
                            const Py_ssize_t *lens, int T, int B, int I, int H,
                            bint batch_first, bint transposed_step, bint packed) noexcept nogil:
    """lstm_forward's time loops on its buffers' first elements (C-contiguous, shapes as
    there; scratch and lens may be NULL): the entry point the driver's fast path
    (cells/_fastpath.pyx) calls with no buffers to acquire."""
    cdef int GH = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1   # rows between steps
    cdef Py_ssize_t rs = 1 if not batch_first else T   # rows between sequences
    cdef Py_ssize_t t, b
    cdef Py_ssize_t BH = <Py_ssize_t>B * H             # one time slice of hbuf, cbuf
    cdef floating *z_t
    cdef int saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
    # W_hh^T packed once for all T steps (step_packing.pxd; NULL if out of memory: the
    # unpacked form)
    cdef floating *W_packed = pack_step_weights(W_hh, GH, H, B, False) if packed else NULL
    # Z = X W_ih^T: (T*B x 4H) = (T*B x I)(4H x I)^T, every step in one GEMM
    input_product(X, W_ih, gates, GH, T * B, GH, I)
    for t in range(T):
        z_t = gates + t * ts * GH
        # z_t += h_{t-1} W_hh^T: (B x 4H) += (B x H)(4H x H)^T
        recurrent_product(W_hh, hbuf + t * BH, 1, z_t, rs * GH, B, GH, H, transposed_step,
                          scratch, W_packed)
        for b in range(B):
            if lens != NULL and t >= lens[b]:
                # an ended sequence keeps its state
                memcpy(hbuf + (t + 1) * BH + b * H, hbuf + t * BH + b * H,
                       H * sizeof(floating))
                memcpy(cbuf + (t + 1) * BH + b * H, cbuf + t * BH + b * H,
                       H * sizeof(floating))
            else:
                # gates = act(z_t + b); c_t = f c_{t-1} + i g; h_t = o tanh(c_t)
                cell_forward(z_t + b * rs * GH, bias, cbuf + t * BH + b * H,
                             cbuf + (t + 1) * BH + b * H, hbuf + (t + 1) * BH + b * H, H)
    free_step_weights(W_packed)
    one_thread_end(saved)


def lstm_backward(*, const floating[:, ::1] X, const floating[:, ::1] dh, object states,
                  object kept, object carries, object args, object work,
                  bint transposed_step, bint packed=False):
    """Reverse time loop. carry_h and carry_c (B, H) hold dL/dh_T and dL/dc_T from outside
    (dh_n and dc_n, or zeros) on entry, dL/dh_0 and dL/dc_0 on exit. dh (T*B, H, in X's
    row order) is the gradient arriving at every step, or None. dA (T*B, 4H) is
    workspace; dX, dW_ih, dW_hh, db are overwritten; db is the gradient of b_ih and of
    b_hh alike. With transposed_step, W_hhT (H, 4H) and scratch (H*B) are workspace
    (W_hhT is filled with W_hh^T here). lengths (B,) or None: see the top of this file;
    hold (B, H) is workspace when lengths is given (the carried dh rows of ended
    sequences, kept across the step's GEMM).
    """
    # the weights and options from args (a cells.args.CellArgs), the buffers from work (a
    # cells.driver.BackwardBuffers): one struct each instead of 20 keywords to parse;
    # states [hbuf, cbuf], kept the activated gates, carries [carry_h, carry_c] as the
    # driver holds them
    cdef const floating[:, :, ::1] hbuf = states[0], cbuf = states[1]
    cdef const floating[:, ::1] gates = kept
    cdef floating[:, ::1] carry_h = carries[0], carry_c = carries[1]
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef floating[:, ::1] dA = work.dA, dX = work.dX, dW_ih = work.dW_ih
    cdef floating[:, ::1] dW_hh = work.dW_hh, W_hhT = work.W_hhT, hold = work.hold
    cdef floating[::1] db = work.db, scratch = work.scratch
    cdef bint batch_first = args.batch_first
    # scratch and W_hhT are allocated (and read) only for the transposed step, hold only
    # with lengths
    with nogil:
        lstm_backward_loop(X=&X[0, 0], dh=&dh[0, 0] if dh is not None else NULL,
                           hbuf=&hbuf[0, 0, 0], cbuf=&cbuf[0, 0, 0], gates=&gates[0, 0],
                           carry_h=&carry_h[0, 0], carry_c=&carry_c[0, 0],
                           W_ih=&W_ih[0, 0], W_hh=&W_hh[0, 0],
                           lens=&lengths[0] if lengths is not None else NULL,
                           dA=&dA[0, 0], dX=&dX[0, 0], dW_ih=&dW_ih[0, 0],
                           dW_hh=&dW_hh[0, 0], db=&db[0],
                           W_hhT=&W_hhT[0, 0] if transposed_step else NULL,
                           scratch=&scratch[0] if transposed_step else NULL,
                           hold=&hold[0, 0] if hold is not None else NULL,
                           T=hbuf.shape[0] - 1, B=hbuf.shape[1], I=X.shape[1],
                           H=hbuf.shape[2], batch_first=batch_first,
                           transposed_step=transposed_step, packed=packed)


cdef void lstm_backward_loop(const floating *X, const floating *dh, const floating *hbuf,
                             const floating *cbuf, const floating *gates, floating *carry_h,
                             floating *carry_c, const floating *W_ih, const floating *W_hh,
                             const Py_ssize_t *lens, floating *dA, floating *dX,
                             floating *dW_ih, floating *dW_hh, floating *db,
                             floating *W_hhT, floating *scratch, floating *hold, int T,
                             int B, int I, int H, bint batch_first,
                             bint transposed_step, bint packed) noexcept nogil:
    """lstm_backward's time loops on its buffers' first elements (C-contiguous, shapes as
    there; dh, lens, W_hhT, scratch and hold may be NULL): the entry point the driver's
    fast path (cells/_fastpath.pyx) calls with no buffers to acquire."""
    cdef int GH = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1
    cdef Py_ssize_t rs = 1 if not batch_first else T
    cdef Py_ssize_t t, b
    cdef Py_ssize_t BH = <Py_ssize_t>B * H             # one time slice of hbuf, cbuf
    cdef floating *dA_t
    cdef const floating *dh_t
    cdef int saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
    # W_hh packed once for all T steps (step_packing.pxd; NULL if out of memory: the
    # unpacked form)
    cdef floating *W_packed = pack_step_weights(W_hh, GH, H, B, True) if packed else NULL
    # db = 0; W_hhT = W_hh^T (H x 4H) for the transposed per-step GEMM
    begin_backward(db, GH, W_hh, W_hhT, GH, H, transposed_step)
    for t in range(T - 1, -1, -1):
        dA_t = dA + t * ts * GH
        for b in range(B):
            if ended_row(lens, t, b, dA_t + b * rs * GH, GH):
                # both carries pass unchanged: carry_c is not touched, carry_h is
                # kept across the GEMM below
                continue
            dh_t = row_or_null(dh, t * ts + b * rs, H)
            # dA_t from dL/dh_t = carry_h + dh_t and dL/dc_t = carry_c through the
            # cell; carry_c becomes dL/dc_{t-1}; db += dA_t while it is in L1
            cell_backward(gates + (t * ts + b * rs) * GH, cbuf + t * BH + b * H,
                          cbuf + (t + 1) * BH + b * H, carry_h + b * H, dh_t,
                          carry_c + b * H, dA_t + b * rs * GH, db, H)
        # carry_h = dL/dh_{t-1} = dA_t W_hh: (B x H) = (B x 4H)(4H x H); the rows of
        # ended sequences keep theirs
        recurrent_product_grad(W_hh, W_hhT, dA_t, rs * GH, 0, carry_h, B, GH, H,
                               transposed_step, scratch, lens, t, hold, W_packed)

    # dW_ih = dA^T X, dX = dA W_ih, dW_hh = sum_t dA_t^T h_{t-1}, as large GEMMs
    shared_weight_grads(X, W_ih, hbuf, dA, dX, dW_ih, dW_hh, T, B, I, GH, H, batch_first)
    free_step_weights(W_packed)
    one_thread_end(saved)
