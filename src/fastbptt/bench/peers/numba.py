"""The numba peer: the time loops a NumPy user writes, under numba.njit as they stand.

Per step, forward: A = x_t W_ih^T + h_{t-1} W_hh^T + b (B, G*H), the gates and the
states stored for backward; backward, from t = T-1 down: the gate gradients dA (B, G*H)
from the stored gates, then dx_t = dA W_ih, dW_ih += dA^T x_t, dW_hh += dA^T h_{t-1},
db += sum_b dA and the carried state gradient dA W_hh. np.dot inside njit calls scipy's
BLAS (the harness's thread_limit sets its threads); each step's products and array
expressions allocate, as the plain loop does. The GRU's n gate takes the reset gate after
W_hn, so its dP and dR differ in that block (the equations in fastbptt.reference.gru).

Scalars are integers: numba types a float literal times a float32 array as float64, so
`1 - z` keeps float32 where `1.0 - z` would not (check_peer checks the dtypes). One jitted
function pair per cell (in _numba_loops, which imports numba), compiled per dtype on the
call that prepare makes, or loaded from numba's on-disk cache.
"""
from fastbptt.bench.peers._common import PeerUnavailable, Prepared, import_available, result_of

NAME = "numba"


def available():
    return import_available("numba")


def prepare(cell, problem, threads=1):
    """Prepared(run, result) of the cell's njit loops; run() returns the gradients."""
    try:
        from fastbptt.bench.peers._numba_loops import LOOPS
    except ImportError as exc:
        raise PeerUnavailable(f"not importable ({exc})") from None
    forward, backward = LOOPS[cell]
    states = tuple(problem.states)
    weights = (problem.W_ih, problem.W_hh)

    def run():
        hs, saved = forward(problem.x, *states, *weights, problem.b_ih, problem.b_hh)
        return hs, backward(problem.dh, problem.x, *states, *weights, saved)

    hs, (dx, dstates, dW_ih, dW_hh, db_ih, db_hh) = run()   # compiles
    grads = {"dx": dx, **dict(zip(("dh0", "dc0"), dstates)), "dW_ih": dW_ih,
             "dW_hh": dW_hh, "db_ih": db_ih, "db_hh": db_hh}
    return Prepared(run, result_of(hs, grads))
