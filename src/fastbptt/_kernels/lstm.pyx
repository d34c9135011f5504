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
# The wrappers in fastbptt.cells.lstm validate every argument and allocate every buffer; nothing
# here allocates, touches a Python object inside a loop, or holds the GIL.

from cython cimport floating
from libc.string cimport memcpy

from fastbptt._kernels.time_loop cimport begin_backward, ended_row, row_or_null
from fastbptt._kernels.step_packing cimport free_step_weights, pack_step_weights
from fastbptt._kernels.recurrent_gemm cimport (input_product, recurrent_product,
                                               recurrent_product_grad, shared_weight_grads)

cdef extern from "lstm_cell.h" nogil:
    # The fused element-wise passes over one batch row; the math is in lstm_cell.h.
    # gates (4H): pre-activations in, activated gates out; c, h (H) the new state.
    void fb_lstm_forward_f32(float *gates, const float *bias, const float *c_prev,
                             float *c, float *h, Py_ssize_t H)
    void fb_lstm_forward_f64(double *gates, const double *bias, const double *c_prev,
                             double *c, double *h, Py_ssize_t H)
    # dA (4H) from the gates, the states and dh (+ dh_out, may be NULL); dc (H) holds
    # dL/dc_t on entry and dL/dc_{t-1} on exit; db (4H) += dA.
    void fb_lstm_backward_f32(const float *gates, const float *c_prev, const float *c,
                              const float *dh, const float *dh_out, float *dc, float *dA,
                              float *db, Py_ssize_t H)
    void fb_lstm_backward_f64(const double *gates, const double *c_prev, const double *c,
                              const double *dh, const double *dh_out, double *dc,
                              double *dA, double *db, Py_ssize_t H)


cdef inline void cell_forward(floating *gates, const floating *bias, const floating *c_prev,
                              floating *c, floating *h, Py_ssize_t H) noexcept nogil:
    if floating is float:
        fb_lstm_forward_f32(gates, bias, c_prev, c, h, H)
    else:
        fb_lstm_forward_f64(gates, bias, c_prev, c, h, H)


cdef inline void cell_backward(const floating *gates, const floating *c_prev,
                               const floating *c, const floating *dh,
                               const floating *dh_out, floating *dc, floating *dA,
                               floating *db, Py_ssize_t H) noexcept nogil:
    if floating is float:
        fb_lstm_backward_f32(gates, c_prev, c, dh, dh_out, dc, dA, db, H)
    else:
        fb_lstm_backward_f64(gates, c_prev, c, dh, dh_out, dc, dA, db, H)


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
    scratch (4H*B) is workspace for the transposed step; packed: the per-step products
    run on W_hh packed once here (step_packing.pxd). bias = b_ih + b_hh (4H,).
    lengths (B,) or None: see the top of this file. All sizes are at least 1 (the wrapper
    sends empty problems to the reference implementation).
    """
    # the weights and options from args (a cells.args.CellArgs): one struct instead of
    # more keywords to parse on every call
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef bint batch_first = args.batch_first
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    # scratch is allocated (and read) only for the transposed step
    cdef floating *scratch_p = &scratch[0] if transposed_step else NULL
    cdef int I = X.shape[1], GH = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1   # rows between steps
    cdef Py_ssize_t rs = 1 if not batch_first else T   # rows between sequences
    cdef Py_ssize_t t, b
    cdef floating *z_t
    cdef const Py_ssize_t *lens = &lengths[0] if lengths is not None else NULL
    cdef floating *W_packed = NULL
    with nogil:
        if packed:
            # W_hh^T packed once for all T steps (NULL if out of memory: the unpacked form)
            W_packed = pack_step_weights(&W_hh[0, 0], GH, H, B, False)
        # Z = X W_ih^T: (T*B x 4H) = (T*B x I)(4H x I)^T, every step in one GEMM
        input_product(&X[0, 0], &W_ih[0, 0], &gates[0, 0], GH, T * B, GH, I)
        for t in range(T):
            z_t = &gates[0, 0] + t * ts * GH
            # z_t += h_{t-1} W_hh^T: (B x 4H) += (B x H)(4H x H)^T
            recurrent_product(&W_hh[0, 0], &hbuf[t, 0, 0], 1, z_t, rs * GH, B, GH, H,
                              transposed_step, scratch_p, W_packed)
            for b in range(B):
                if lens != NULL and t >= lens[b]:
                    # an ended sequence keeps its state
                    memcpy(&hbuf[t + 1, b, 0], &hbuf[t, b, 0], H * sizeof(floating))
                    memcpy(&cbuf[t + 1, b, 0], &cbuf[t, b, 0], H * sizeof(floating))
                else:
                    # gates = act(z_t + b); c_t = f c_{t-1} + i g; h_t = o tanh(c_t)
                    cell_forward(z_t + b * rs * GH, &bias[0], &cbuf[t, b, 0],
                                 &cbuf[t + 1, b, 0], &hbuf[t + 1, b, 0], H)
        free_step_weights(W_packed)


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
    cdef bint batch_first = args.batch_first
    cdef floating[:, ::1] dA = work.dA, dX = work.dX, dW_ih = work.dW_ih
    cdef floating[:, ::1] dW_hh = work.dW_hh, W_hhT = work.W_hhT, hold = work.hold
    cdef floating[::1] db = work.db, scratch = work.scratch
    # scratch is allocated (and read) only for the transposed step
    cdef floating *scratch_p = &scratch[0] if transposed_step else NULL
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    cdef int I = X.shape[1], GH = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1
    cdef Py_ssize_t rs = 1 if not batch_first else T
    cdef Py_ssize_t t, b
    cdef floating *dA_t
    cdef const floating *dh_t
    cdef const floating *dh_all = &dh[0, 0] if dh is not None else NULL
    cdef const Py_ssize_t *lens = &lengths[0] if lengths is not None else NULL
    cdef floating *hold_p = &hold[0, 0] if hold is not None else NULL
    # W_hhT is None unless transposed_step (the driver allocates it only then)
    cdef floating *W_hhT_p = &W_hhT[0, 0] if transposed_step else NULL
    cdef floating *W_packed = NULL
    with nogil:
        # db = 0; W_hhT = W_hh^T (H x 4H) for the transposed per-step GEMM
        begin_backward(&db[0], GH, &W_hh[0, 0], W_hhT_p, GH, H, transposed_step)
        if packed:
            W_packed = pack_step_weights(&W_hh[0, 0], GH, H, B, True)
        for t in range(T - 1, -1, -1):
            dA_t = &dA[0, 0] + t * ts * GH
            for b in range(B):
                if ended_row(lens, t, b, dA_t + b * rs * GH, GH):
                    # both carries pass unchanged: carry_c is not touched, carry_h is
                    # kept across the GEMM below
                    continue
                dh_t = row_or_null(dh_all, t * ts + b * rs, H)
                # dA_t from dL/dh_t = carry_h + dh_t and dL/dc_t = carry_c through the
                # cell; carry_c becomes dL/dc_{t-1}; db += dA_t while it is in L1
                cell_backward(&gates[0, 0] + (t * ts + b * rs) * GH, &cbuf[t, b, 0],
                              &cbuf[t + 1, b, 0], &carry_h[b, 0], dh_t, &carry_c[b, 0],
                              dA_t + b * rs * GH, &db[0], H)
            # carry_h = dL/dh_{t-1} = dA_t W_hh: (B x H) = (B x 4H)(4H x H); the rows of
            # ended sequences keep theirs
            recurrent_product_grad(&W_hh[0, 0], W_hhT_p, dA_t, rs * GH, 0, &carry_h[0, 0],
                                   B, GH, H, transposed_step, scratch_p, lens, t, hold_p,
                                   W_packed)
        free_step_weights(W_packed)

        # dW_ih = dA^T X, dX = dA W_ih, dW_hh = sum_t dA_t^T h_{t-1}, as large GEMMs
        shared_weight_grads(&X[0, 0], &W_ih[0, 0], &hbuf[0, 0, 0], &dA[0, 0], &dX[0, 0],
                            &dW_ih[0, 0], &dW_hh[0, 0], T, B, I, GH, H, batch_first)
