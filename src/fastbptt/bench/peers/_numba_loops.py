"""The numba peer's loops (fastbptt.bench.peers.numba says what they do), compiled on
first call per dtype and cached on disk (cache=True) so that later processes skip the
compilation. Imported only when the numba peer prepares a problem: it imports numba."""
import numba
import numpy as np


@numba.njit(cache=True)
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


@numba.njit(cache=True)
def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    T, B, _ = x.shape
    b = b_ih + b_hh
    hs = np.empty((T, B, h0.shape[1]), x.dtype)
    h = h0
    for t in range(T):
        h = np.tanh(np.dot(x[t], W_ih.T) + np.dot(h, W_hh.T) + b)
        hs[t] = h
    return hs, (hs,)


@numba.njit(cache=True)
def rnn_backward(dh, x, h0, W_ih, W_hh, saved):
    (hs,) = saved
    T = x.shape[0]
    dx = np.empty_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_hh.shape[0], x.dtype)
    carry = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        dA = (dh[t] + carry) * (1 - hs[t] * hs[t])
        dx[t] = np.dot(dA, W_ih)
        dW_ih += np.dot(dA.T, x[t])
        dW_hh += np.dot(dA.T, h_prev)
        db += dA.sum(axis=0)
        carry = np.dot(dA, W_hh)
    return dx, (carry,), dW_ih, dW_hh, db, db.copy()


@numba.njit(cache=True)
def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    T, B, _ = x.shape
    H = h0.shape[1]
    b = b_ih + b_hh
    hs = np.empty((T, B, H), x.dtype)
    cs = np.empty((T, B, H), x.dtype)
    gates = np.empty((T, B, 4 * H), x.dtype)    # i, f, g, o after their nonlinearity
    h, c = h0, c0
    for t in range(T):
        A = np.dot(x[t], W_ih.T) + np.dot(h, W_hh.T) + b
        i, f = sigmoid(A[:, :H]), sigmoid(A[:, H:2 * H])
        g, o = np.tanh(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        gates[t, :, :H], gates[t, :, H:2 * H] = i, f
        gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:] = g, o
        hs[t], cs[t] = h, c
    return hs, (hs, cs, gates)


@numba.njit(cache=True)
def lstm_backward(dh, x, h0, c0, W_ih, W_hh, saved):
    hs, cs, gates = saved
    T, B, _ = x.shape
    H = h0.shape[1]
    dx = np.empty_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(4 * H, x.dtype)
    dA = np.empty((B, 4 * H), x.dtype)
    dh_carry, dc_carry = np.zeros_like(h0), np.zeros_like(c0)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        c_prev = cs[t - 1] if t > 0 else c0
        i, f = gates[t, :, :H], gates[t, :, H:2 * H]
        g, o = gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
        tc = np.tanh(cs[t])
        g_h = dh[t] + dh_carry
        g_c = dc_carry + g_h * o * (1 - tc * tc)
        dA[:, :H] = g_c * g * i * (1 - i)
        dA[:, H:2 * H] = g_c * c_prev * f * (1 - f)
        dA[:, 2 * H:3 * H] = g_c * i * (1 - g * g)
        dA[:, 3 * H:] = g_h * tc * o * (1 - o)
        dc_carry = g_c * f
        dx[t] = np.dot(dA, W_ih)
        dW_ih += np.dot(dA.T, x[t])
        dW_hh += np.dot(dA.T, h_prev)
        db += dA.sum(axis=0)
        dh_carry = np.dot(dA, W_hh)
    return dx, (dh_carry, dc_carry), dW_ih, dW_hh, db, db.copy()


@numba.njit(cache=True)
def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    T, B, _ = x.shape
    H = h0.shape[1]
    hs = np.empty((T, B, H), x.dtype)
    gates = np.empty((T, B, 4 * H), x.dtype)    # r, z, n and R_n = (h W_hn^T + b_hn)
    h = h0
    for t in range(T):
        P = np.dot(x[t], W_ih.T) + b_ih
        R = np.dot(h, W_hh.T) + b_hh
        r = sigmoid(P[:, :H] + R[:, :H])
        z = sigmoid(P[:, H:2 * H] + R[:, H:2 * H])
        n = np.tanh(P[:, 2 * H:] + r * R[:, 2 * H:])
        h = (1 - z) * n + z * h
        gates[t, :, :H], gates[t, :, H:2 * H] = r, z
        gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:] = n, R[:, 2 * H:]
        hs[t] = h
    return hs, (hs, gates)


@numba.njit(cache=True)
def gru_backward(dh, x, h0, W_ih, W_hh, saved):
    hs, gates = saved
    T, B, _ = x.shape
    H = h0.shape[1]
    dx = np.empty_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih, db_hh = np.zeros(3 * H, x.dtype), np.zeros(3 * H, x.dtype)
    dP = np.empty((B, 3 * H), x.dtype)
    dR = np.empty((B, 3 * H), x.dtype)
    carry = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        r, z = gates[t, :, :H], gates[t, :, H:2 * H]
        n, R_n = gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
        g = dh[t] + carry
        da_n = g * (1 - z) * (1 - n * n)
        da_r = da_n * R_n * r * (1 - r)
        da_z = g * (h_prev - n) * z * (1 - z)
        dP[:, :H], dP[:, H:2 * H], dP[:, 2 * H:] = da_r, da_z, da_n
        dR[:, :H], dR[:, H:2 * H], dR[:, 2 * H:] = da_r, da_z, da_n * r
        dx[t] = np.dot(dP, W_ih)
        dW_ih += np.dot(dP.T, x[t])
        dW_hh += np.dot(dR.T, h_prev)
        db_ih += dP.sum(axis=0)
        db_hh += dR.sum(axis=0)
        carry = np.dot(dR, W_hh) + g * z
    return dx, (carry,), dW_ih, dW_hh, db_ih, db_hh


# cell -> (forward, backward)
LOOPS = {"rnn": (rnn_forward, rnn_backward), "lstm": (lstm_forward, lstm_backward),
         "gru": (gru_forward, gru_backward)}
