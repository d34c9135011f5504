"""GRU, forward and backward through time, in plain NumPy.

PyTorch's layout and gate order r, z, n: W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,).

    P_t = x_t W_ih^T + b_ih = [P_r P_z P_n]                (B, 3H)
    R_t = h_{t-1} W_hh^T + b_hh = [R_r R_z R_n]            (B, 3H)
    r = sigmoid(P_r + R_r),  z = sigmoid(P_z + R_z)         (B, H)
    n = tanh(P_n + r * R_n)                                 (the reset gate acts after W_hn)
    h_t = (1 - z) * n + z * h_{t-1}

Backward, with g = dL/dh_t arriving from the loss at step t and from step t+1:

    dn = g (1 - z),  dz = g (h_{t-1} - n)
    da_n = dn (1 - n^2),  da_r = da_n R_n r (1 - r),  da_z = dz z (1 - z)
    dP_t = [da_r, da_z, da_n]      dW_ih += dP_t^T x_t,      db_ih += sum_b dP_t,  dx_t = dP_t W_ih
    dR_t = [da_r, da_z, da_n r]    dW_hh += dR_t^T h_{t-1},  db_hh += sum_b dR_t
    g_{t-1} = dh_{t-1} + dR_t W_hh + g z

dP and dR differ in the n block, so db_ih != db_hh. With lengths, sequence b stops at
step lengths[b]: after it, its state is carried unchanged, its output is zero and its
dP, dR are zero, so g passes back through those steps untouched and nothing past the
length reaches a gradient.
"""
import numpy as np
from scipy.special import expit

from fastbptt.cells import docs
from fastbptt.cells.spec import GRU as SPEC
from fastbptt.reference import _recurrence


class ReferenceGRUCache(_recurrence.ReferenceCache):
    """What gru_backward needs from gru_forward. Opaque to callers but for h_n."""
    __slots__ = ("args", "h", "r", "z", "n", "R_n")
    spec = SPEC

    def __init__(self, args, h, r, z, n, R_n):
        self.args = args   # validated CellArgs
        self.h = h         # (T, B, H) time-major states h_1..h_T; past a sequence's
        #                    length, its last state repeated
        self.r = r         # (T, B, H) each: the gates and R_n = h_{t-1} W_hn^T + b_hn
        self.z = z
        self.n = n
        self.R_n = R_n

    def step(self, t, d_states, keep=None):
        """gru_backward_step in the time loop's terms (fastbptt.reference._recurrence)."""
        dP, dR, g_prev = gru_backward_step(d_states[0], self, t, keep)
        return dP, dR, (g_prev,)


def _blocks(a, H):
    """The r, z, n column blocks of a (B, 3H) array."""
    return a[:, :H], a[:, H:2 * H], a[:, 2 * H:]


@docs.fill(SPEC)
def gru_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first=False, lengths=None,
                check_finite=False, checkpoint=None):
    """Run a GRU over a sequence, in plain NumPy, one step at a time.

    The specification of :func:`fastbptt.gru_forward` (same signature and results to
    rounding); the equations are in this module's docstring.

    {reference_forward_parameters}
    {forward_options}

    {reference_forward_returns}
    """
    return _recurrence.forward(SPEC, _forward, x, (h0,), W_ih, W_hh, b_ih, b_hh, batch_first,
                               lengths, check_finite, checkpoint)


def _step(args, x_t, h_prev):
    """P_t = x_t W_ih^T + b_ih, R_t = h_{t-1} W_hh^T + b_hh, the gates r, z, n from them
    and h_t = (1 - z) n + z h_{t-1}; r, z, n and R_n are kept."""
    H = args.H
    P_r, P_z, P_n = _blocks(x_t @ args.W_ih.T + args.b_ih, H)
    R_r, R_z, R_n = _blocks(h_prev @ args.W_hh.T + args.b_hh, H)
    r = expit(P_r + R_r)
    z = expit(P_z + R_z)
    n = np.tanh(P_n + r * R_n)
    h = (1 - z) * n + z * h_prev
    return (h,), (r, z, n, R_n)


def _forward(args):
    out, (h,), (r, z, n, R_n) = _recurrence.run_forward(args, _step, kept_gates=(1, 1, 1, 1))
    return out, ReferenceGRUCache(args, h, r, z, n, R_n)


@docs.fill(SPEC)
def gru_backward(dh, cache, dh_n=None, check_finite=False):
    """Backpropagate through time through a GRU, in plain NumPy.

    The specification of :func:`fastbptt.gru_backward`; db_ih and db_hh differ, since
    the reset gate acts after b_hn.

    {reference_backward_sections}
    """
    return _recurrence.backward(SPEC, ReferenceGRUCache, dh, cache, (dh_n,), check_finite)


def gru_backward_step(g, cache, t, keep=None):
    """gru_backward through step t's recurrence alone: from g = dL/dh_t (..., B, H), all
    that reaches h_t (leading dimensions broadcast: several vectors go back at once), and
    keep, (B, 1) bool, the rows inside their length (or None).
    Returns (dP_t, dR_t, g_{t-1}): dP_t, dR_t (..., B, 3H) zero where not kept, and
    g_{t-1} = dR_t W_hh + g z (g itself where not kept), before the loss's own gradient
    at step t-1 is added.
    """
    args = cache.args
    h_prev = cache.h[t - 1] if t > 0 else args.h0
    r, z, n = cache.r[t], cache.z[t], cache.n[t]
    dn = g * (1 - z)
    dz = g * (h_prev - n)
    da_n = dn * (1 - n * n)
    da_r = da_n * cache.R_n[t] * r * (1 - r)
    da_z = dz * z * (1 - z)
    dP = np.concatenate([da_r, da_z, da_n], axis=-1)
    dR = np.concatenate([da_r, da_z, da_n * r], axis=-1)
    if keep is not None:
        # past its length a sequence's step is the identity: g passes through it
        dP = np.where(keep, dP, 0)
        dR = np.where(keep, dR, 0)
    g_next = dR @ args.W_hh + g * z
    g_prev = g_next if keep is None else np.where(keep, g_next, g)
    return dP, dR, g_prev
