# LSTM with a projection (LSTMP, Sak et al. 2014; torch.nn.LSTM's proj_size): forward and
# reverse time loops. The cell is lstm.pyx's; the hidden state is projected to P < H:
#
#   z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh     (B x 4H), W_hh (4H x P), [i f g o]
#   c_t = f c_{t-1} + i g,  m_t = o tanh(c_t)            (B x H)
#   h_t = m_t W_hr^T                                     (B x P), W_hr (P x H)
#
# Backward, per step in reverse, with dH_t = dL/dh_t (carried from step t+1 plus the
# loss's dh_t): dm_t = dH_t W_hr (B x H) goes through the cell as lstm.pyx's dh does,
# then dL/dh_{t-1} = dA_t W_hh (B x P). After the loop, besides lstm.pyx's dW_ih, dX and
# dW_hh (= sum_t dA_t^T h_{t-1}, 4H x P), dW_hr = sum_t dH_t^T m_t (P x H) is one GEMM
# over the T*B rows of dH and m, both kept time-major.
#
# Row order and strides as in lstm.pyx (recurrent_gemm.pxd states them): X, the gates, dA
# and dh in x's row order; hbuf (T+1, B, P), cbuf (T+1, B, H), mbuf and dH (T, B, ...)
# time-major. Lengths: past lengths[b] a step is the identity on h and c; m's row is zero
# there (uninitialised memory, a NaN say, times the zero dH rows would still be NaN in
# dW_hr's GEMM) and, in reverse, dA and dH are zero and both carries pass unchanged.
#
# The wrappers in fastbptt.cells.lstmp validate every argument and allocate every buffer.

from libc.string cimport memcpy, memset
from cython cimport floating

from fastbptt._kernels.blas cimport one_thread_begin, one_thread_end
from fastbptt._kernels.lstm_cell cimport lstm_cell_backward, lstm_cell_forward
from fastbptt._kernels.time_loop cimport begin_backward, ended_row, row_or_null
from fastbptt._kernels.recurrent_gemm cimport (recurrent_product, recurrent_product_grad,
                                               recurrent_weight_grad, input_product,
                                               shared_weight_grads)


def lstmp_forward(*, const floating[:, ::1] X, const floating[::1] bias,
                  floating[:, ::1] gates, floating[:, :, ::1] hbuf, floating[:, :, ::1] cbuf,
                  floating[:, :, ::1] mbuf, floating[::1] scratch, object args,
                  bint transposed_step):
    """Fill hbuf[1:] (T+1, B, P) and cbuf[1:] (T+1, B, H) with the states after every
    step (hbuf[0], cbuf[0] hold h0, c0), mbuf (T, B, H) with m_t = o tanh(c_t) and gates
    (T*B, 4H) with the activated gates. scratch (4H*B) is workspace for the transposed
    step. bias = b_ih + b_hh (4H,). args: a cells.projection.ProjArgs (W_ih, W_hh, W_hr,
    lengths, batch_first). All sizes are at least 1.
    """
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh, W_hr = args.W_hr
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef bint batch_first = args.batch_first
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], P = hbuf.shape[2]
    cdef int H = cbuf.shape[2], I = X.shape[1], GH = 4 * H
    cdef floating *scratch_p = &scratch[0] if transposed_step else NULL
    cdef Py_ssize_t ts = B if not batch_first else 1   # rows between steps
    cdef Py_ssize_t rs = 1 if not batch_first else T   # rows between sequences
    cdef Py_ssize_t t, b
    cdef floating *z_t
    cdef const Py_ssize_t *lens = &lengths[0] if lengths is not None else NULL
    cdef int saved   # what one_thread_end needs (blas.pxd)
    with nogil:
        saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
        # Z = X W_ih^T: (T*B x 4H) = (T*B x I)(4H x I)^T, every step in one GEMM
        input_product(&X[0, 0], &W_ih[0, 0], &gates[0, 0], GH, T * B, GH, I)
        for t in range(T):
            z_t = &gates[0, 0] + t * ts * GH
            # z_t += h_{t-1} W_hh^T: (B x 4H) += (B x P)(4H x P)^T
            recurrent_product(&W_hh[0, 0], &hbuf[t, 0, 0], 1, z_t, rs * GH, B, GH, P,
                              transposed_step, scratch_p, NULL)
            for b in range(B):
                if lens != NULL and t >= lens[b]:
                    # an ended sequence keeps its c; its m row is zero (see the top)
                    memcpy(&cbuf[t + 1, b, 0], &cbuf[t, b, 0], H * sizeof(floating))
                    memset(&mbuf[t, b, 0], 0, H * sizeof(floating))
                else:
                    # gates = act(z_t + b); c_t = f c_{t-1} + i g; m_t = o tanh(c_t)
                    lstm_cell_forward(z_t + b * rs * GH, &bias[0], &cbuf[t, b, 0],
                                      &cbuf[t + 1, b, 0], &mbuf[t, b, 0], H)
            # h_t = m_t W_hr^T: (B x P) = (B x H)(P x H)^T
            recurrent_product(&W_hr[0, 0], &mbuf[t, 0, 0], 0, &hbuf[t + 1, 0, 0], P, B,
                              P, H, False, NULL, NULL)
            if lens != NULL:
                for b in range(B):
                    if t >= lens[b]:
                        # an ended sequence keeps its h
                        memcpy(&hbuf[t + 1, b, 0], &hbuf[t, b, 0], P * sizeof(floating))
        one_thread_end(saved)


def lstmp_backward(*, const floating[:, ::1] X, const floating[:, ::1] dh, object states,
                   object kept, object carries, object args, object work,
                   bint transposed_step):
    """Reverse time loop. states [hbuf, cbuf] and kept [gates, mbuf] as the forward left
    them; carries [carry_h (B, P), carry_c (B, H)] hold dL/dh_T and dL/dc_T on entry,
    dL/dh_0 and dL/dc_0 on exit. dh (T*B, P, in X's row order) is the gradient arriving at
    every step, or None. work (a cells.lstmp.ProjBuffers): dA (T*B, 4H), dH (T, B, P) and
    dm (B, H) are workspace; dX, dW_ih, dW_hh (4H, P), dW_hr (P, H) and db (4H) are
    overwritten. With transposed_step, W_hhT (P, 4H) and scratch (P*B) are workspace;
    hold (B, P) is workspace when lengths is given.
    """
    cdef const floating[:, :, ::1] hbuf = states[0], cbuf = states[1]
    cdef const floating[:, ::1] gates = kept[0]
    cdef const floating[:, :, ::1] mbuf = kept[1]
    cdef floating[:, ::1] carry_h = carries[0], carry_c = carries[1]
    cdef const floating[:, ::1] W_ih = args.W_ih, W_hh = args.W_hh, W_hr = args.W_hr
    cdef const Py_ssize_t[::1] lengths = args.lengths
    cdef bint batch_first = args.batch_first
    cdef floating[:, ::1] dA = work.dA, dX = work.dX, dW_ih = work.dW_ih
    cdef floating[:, ::1] dW_hh = work.dW_hh, dW_hr = work.dW_hr, dm = work.dm
    cdef floating[:, ::1] W_hhT = work.W_hhT, hold = work.hold
    cdef floating[:, :, ::1] dH = work.dH
    cdef floating[::1] db = work.db, scratch = work.scratch
    cdef floating *scratch_p = &scratch[0] if transposed_step else NULL
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], P = hbuf.shape[2]
    cdef int H = cbuf.shape[2], I = X.shape[1], GH = 4 * H
    cdef Py_ssize_t ts = B if not batch_first else 1
    cdef Py_ssize_t rs = 1 if not batch_first else T
    cdef Py_ssize_t t, b, j
    cdef floating *dA_t
    cdef floating *dH_t
    cdef const floating *dh_t
    cdef const floating *dh_all = &dh[0, 0] if dh is not None else NULL
    cdef const Py_ssize_t *lens = &lengths[0] if lengths is not None else NULL
    cdef floating *hold_p = &hold[0, 0] if hold is not None else NULL
    cdef floating *W_hhT_p = &W_hhT[0, 0] if transposed_step else NULL
    cdef int saved   # what one_thread_end needs (blas.pxd)
    with nogil:
        saved = one_thread_begin()   # the whole call on one BLAS thread (blas.pxd)
        # db = 0; W_hhT = W_hh^T (P x 4H) for the transposed per-step GEMM
        begin_backward(&db[0], GH, &W_hh[0, 0], W_hhT_p, GH, P, transposed_step)
        for t in range(T - 1, -1, -1):
            dA_t = &dA[0, 0] + t * ts * GH
            dH_t = &dH[t, 0, 0]
            # dH_t = dL/dh_t = carry_h + dh_t (B x P), zero for ended sequences
            for b in range(B):
                if lens != NULL and t >= lens[b]:
                    memset(dH_t + b * P, 0, P * sizeof(floating))
                    continue
                dh_t = row_or_null(dh_all, t * ts + b * rs, P)
                if dh_t == NULL:
                    memcpy(dH_t + b * P, &carry_h[b, 0], P * sizeof(floating))
                else:
                    for j in range(P):
                        dH_t[b * P + j] = carry_h[b, j] + dh_t[j]
            # dm_t = dH_t W_hr: (B x H) = (B x P)(P x H)
            recurrent_product_grad(&W_hr[0, 0], NULL, dH_t, P, 0, &dm[0, 0], B, P, H,
                                   False, NULL, NULL, t, NULL, NULL)
            for b in range(B):
                if ended_row(lens, t, b, dA_t + b * rs * GH, GH):
                    continue   # both carries pass unchanged
                # dA_t from dL/dm_t and dL/dc_t = carry_c through the cell; carry_c
                # becomes dL/dc_{t-1}; db += dA_t
                lstm_cell_backward(&gates[0, 0] + (t * ts + b * rs) * GH, &cbuf[t, b, 0],
                                   &cbuf[t + 1, b, 0], &dm[b, 0], NULL, &carry_c[b, 0],
                                   dA_t + b * rs * GH, &db[0], H)
            # carry_h = dL/dh_{t-1} = dA_t W_hh: (B x P) = (B x 4H)(4H x P); the rows of
            # ended sequences keep theirs
            recurrent_product_grad(&W_hh[0, 0], W_hhT_p, dA_t, rs * GH, 0, &carry_h[0, 0],
                                   B, GH, P, transposed_step, scratch_p, lens, t, hold_p,
                                   NULL)

        # dW_ih = dA^T X, dX = dA W_ih, dW_hh = sum_t dA_t^T h_{t-1} (4H x P)
        shared_weight_grads(&X[0, 0], &W_ih[0, 0], &hbuf[0, 0, 0], &dA[0, 0], &dX[0, 0],
                            &dW_ih[0, 0], &dW_hh[0, 0], T, B, I, GH, P, batch_first)
        # dW_hr = sum_t dH_t^T m_t: (P x H) = (T*B x P)^T (T*B x H), both time-major
        recurrent_weight_grad(&mbuf[0, 0, 0], &dH[0, 0, 0], P, &dW_hr[0, 0], T, B, P, H,
                              False)
        one_thread_end(saved)
