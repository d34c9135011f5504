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
# The wrappers in fastbptt.cells.rnn validate every argument and allocate every buffer; nothing
# here allocates, touches a Python object inside a loop, or holds the GIL.

from cython cimport floating
from libc.string cimport memcpy, memset

from fastbptt._kernels.blas cimport gemm, gemv, NoTrans, Trans
from fastbptt._kernels.activations cimport activate, activate_grad, accumulate
from fastbptt._kernels.transpose cimport transpose
from fastbptt._kernels.recurrent_gemm cimport GEMV_ROWS

# For the wrappers, which skip W_hh^T where the per-row GEMVs make the step (all cells
# share recurrent_gemm.pxd's GEMV_ROWS).
GEMV_ROWS_PER_STEP = GEMV_ROWS


def rnn_forward(const floating[:, ::1] X, const floating[:, ::1] W_ih,
                const floating[:, ::1] W_hh, const floating[::1] bias,
                floating[:, ::1] P, floating[:, :, ::1] hbuf, floating[::1] scratch,
                const Py_ssize_t[::1] lengths,
                int nonlinearity, bint batch_first, bint transposed_step):
    """Fill hbuf[1:] with h_1..h_T; hbuf[0] holds h0 on entry. P (T*B, H) is workspace,
    scratch (H*B) too (used when transposed_step). P may be hbuf[1:] itself when
    time-major: step t reads only its own rows of P before writing h_t over them.
    lengths (B,) or None: see the top of this file.

    bias = b_ih + b_hh (H,). All sizes are at least 1 (the wrapper sends empty problems
    to the reference implementation).
    """
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    cdef int I = X.shape[1]
    cdef Py_ssize_t ts = B if not batch_first else 1   # rows between steps
    cdef Py_ssize_t rs = 1 if not batch_first else T   # rows between sequences
    cdef Py_ssize_t t, b
    cdef floating *P_t
    cdef floating *h_prev
    cdef floating *h_t
    cdef floating *RT = &scratch[0]
    cdef const Py_ssize_t *lens = &lengths[0] if lengths is not None else NULL
    with nogil:
        # P = X W_ih^T: (T*B x H) = (T*B x I)(H x I)^T, every step in one GEMM
        gemm(NoTrans, Trans, T * B, H, I, 1, &X[0, 0], I, &W_ih[0, 0], I, 0, &P[0, 0], H)
        for t in range(T):
            P_t = &P[0, 0] + t * ts * H
            h_prev = &hbuf[t, 0, 0]
            h_t = &hbuf[t + 1, 0, 0]
            if B <= GEMV_ROWS:
                # per row b: P_t[b] += W_hh h_{t-1}[b]: (H) = (H x H)(H)
                for b in range(B):
                    gemv(NoTrans, H, H, 1, &W_hh[0, 0], H, h_prev + b * H, 1, P_t + b * rs * H)
            elif transposed_step:
                # The same product as its transpose, which OpenBLAS runs faster when B is
                # small against H (measured at B=32, H=256: 43 us against 61 us a call):
                # RT = W_hh h_{t-1}^T: (H x B) = (H x H)(B x H)^T; P_t += RT^T
                gemm(NoTrans, Trans, H, B, H, 1, &W_hh[0, 0], H, h_prev, H, 0, RT, B)
                transpose(RT, H, B, B, P_t, rs * H, True)
            else:
                # P_t += h_{t-1} W_hh^T: (B x H) = (B x H)(H x H)^T, rows rs*H apart
                gemm(NoTrans, Trans, B, H, H, 1, h_prev, H, &W_hh[0, 0], H,
                     1, P_t, <int> (rs * H))
            # h_t = f(P_t + b_ih + b_hh); past a sequence's length, h_t = h_{t-1}
            for b in range(B):
                activate(nonlinearity, P_t + b * rs * H, &bias[0], h_t + b * H, H)
                if lens != NULL and t >= lens[b]:
                    memcpy(h_t + b * H, h_prev + b * H, H * sizeof(floating))


def rnn_backward(const floating[:, ::1] X, const floating[:, ::1] W_ih,
                 const floating[:, ::1] W_hh, const floating[:, :, ::1] hbuf,
                 const floating[:, ::1] dh, floating[:, ::1] dA,
                 floating[:, ::1] carry, floating[:, ::1] dX,
                 floating[:, ::1] dW_ih, floating[:, ::1] dW_hh, floating[::1] db,
                 floating[:, ::1] W_hhT, floating[::1] scratch,
                 const Py_ssize_t[::1] lengths, floating[:, ::1] hold,
                 int nonlinearity, bint batch_first, bint transposed_step):
    """Reverse time loop. carry (B, H) holds dL/dh_T from outside (dh_n, or zeros) on
    entry and dL/dh_0 on exit. dh (T*B, H, in X's row order) is the gradient arriving at
    every step, or None. dA (T*B, H) is workspace; dX, dW_ih, dW_hh, db are overwritten.
    db is the gradient of b_ih and of b_hh alike. With transposed_step, W_hhT (H, H) and
    scratch (H*B) are workspace (W_hhT is filled with W_hh^T here). lengths (B,) or None:
    see the top of this file; hold (B, H) is workspace when lengths is given (the carried
    rows of sequences that have ended, kept across the step's GEMM).
    """
    cdef int T = hbuf.shape[0] - 1, B = hbuf.shape[1], H = hbuf.shape[2]
    cdef int I = X.shape[1]
    cdef Py_ssize_t ts = B if not batch_first else 1
    cdef Py_ssize_t rs = 1 if not batch_first else T
    cdef Py_ssize_t t, b, j
    cdef floating *dA_t
    cdef const floating *dh_t = NULL
    cdef const floating *dh_all = NULL
    cdef floating *c = &carry[0, 0]
    cdef floating *cT = &scratch[0]
    cdef const Py_ssize_t *lens = &lengths[0] if lengths is not None else NULL
    cdef bint any_ended
    if dh is not None:
        dh_all = &dh[0, 0]
    with nogil:
        for j in range(H):
            db[j] = 0
        if transposed_step:
            # W_hhT = W_hh^T: (H x H), for the transposed per-step GEMM
            transpose(&W_hh[0, 0], H, H, H, &W_hhT[0, 0], H, False)
        for t in range(T - 1, -1, -1):
            dA_t = &dA[0, 0] + t * ts * H
            # dA_t = (carry + dh_t) * f'(a_t): the gradient reaching h_t from step t+1 and
            # from the loss at step t, through the nonlinearity; db += the rows of dA_t
            # (db = column sums of dA), while they are in L1
            any_ended = False
            for b in range(B):
                if lens != NULL and t >= lens[b]:
                    # an ended sequence: dA = 0, its carry waits in `hold`
                    memset(dA_t + b * rs * H, 0, H * sizeof(floating))
                    memcpy(&hold[b, 0], c + b * H, H * sizeof(floating))
                    any_ended = True
                    continue
                if dh_all != NULL:
                    dh_t = dh_all + (t * ts + b * rs) * H
                activate_grad(nonlinearity, &hbuf[t + 1, b, 0], c + b * H, dh_t,
                              dA_t + b * rs * H, H)
                accumulate(&db[0], dA_t + b * rs * H, H)
            if B <= GEMV_ROWS:
                # per row b: carry[b] = W_hh^T dA_t[b]: (H) = (H x H)^T (H)
                for b in range(B):
                    gemv(Trans, H, H, 1, &W_hh[0, 0], H, dA_t + b * rs * H, 0, c + b * H)
            elif transposed_step:
                # As in forward: cT = W_hh^T dA_t^T: (H x B) = (H x H)(B x H)^T; carry = cT^T
                gemm(NoTrans, Trans, H, B, H, 1, &W_hhT[0, 0], H, dA_t, <int> (rs * H),
                     0, cT, B)
                transpose(cT, H, B, B, c, H, False)
            else:
                # carry = dA_t W_hh: (B x H) = (B x H)(H x H), dA_t rows rs*H apart
                gemm(NoTrans, NoTrans, B, H, H, 1, dA_t, <int> (rs * H), &W_hh[0, 0], H,
                     0, c, H)
            if any_ended:
                for b in range(B):
                    if t >= lens[b]:
                        memcpy(c + b * H, &hold[b, 0], H * sizeof(floating))

        # The shared parameters' gradients, summed over all steps, as large GEMMs.
        # dW_ih = dA^T X: (H x I) = (T*B x H)^T (T*B x I)
        gemm(Trans, NoTrans, H, I, T * B, 1, &dA[0, 0], H, &X[0, 0], I, 0, &dW_ih[0, 0], I)
        # dX = dA W_ih: (T*B x I) = (T*B x H)(H x I)
        gemm(NoTrans, NoTrans, T * B, I, H, 1, &dA[0, 0], H, &W_ih[0, 0], I, 0, &dX[0, 0], I)
        # dW_hh = sum_t dA_t^T h_{t-1}: (H x H). hbuf[0:T] is time-major, so it pairs
        # with dA in one GEMM only when dA is time-major too.
        if not batch_first or B == 1:
            # (H x H) = (T*B x H)^T (T*B x H)
            gemm(Trans, NoTrans, H, H, T * B, 1, &dA[0, 0], H, &hbuf[0, 0, 0], H,
                 0, &dW_hh[0, 0], H)
        elif T <= B:
            # batch-first, one GEMM per step: (H x H) += (B x H)^T (B x H)
            for t in range(T):
                gemm(Trans, NoTrans, H, H, B, 1, &dA[0, 0] + t * H, T * H,
                     &hbuf[t, 0, 0], H, 0 if t == 0 else 1, &dW_hh[0, 0], H)
        else:
            # batch-first, one GEMM per sequence: (H x H) += (T x H)^T (T x H)
            for b in range(B):
                gemm(Trans, NoTrans, H, H, T, 1, &dA[0, 0] + b * T * H, H,
                     &hbuf[0, b, 0], B * H, 0 if b == 0 else 1, &dW_hh[0, 0], H)
