"""The peers of the benchmark: what a user would pick instead of fastbptt, each doing the
same work on the same weights (torch.nn, a JAX scan under jax.jit, a numba loop).

One module per peer (torch.py, jax.py, numba.py), each with the same small interface:

- available() -> Availability(ok, detail): whether the peer can run here, with its
  version when it can and the reason (the ImportError) when it cannot. Importing the
  peer's module imports nothing heavy; available() imports the peer's package.
- prepare(cell, problem, threads=1) -> Prepared(run, result): run() does one
  forward+backward of the problem (a function of no arguments for the harness to time),
  with dL/dh at every step and every gradient; result holds the outputs and gradients of
  one call made while preparing (which also pays any compilation, so that no timed call
  does), as numpy arrays named like fastbptt's: h, dx, dh0, (dc0,) dW_ih, dW_hh, db_ih,
  db_hh. threads is the row's thread count; a peer that cannot run at it (JAX fixes its
  count when it starts) raises PeerUnavailable with the reason.

check_peer() holds each peer's result to fastbptt's (expected_result) before it is timed,
so that a row never times a peer doing different or wrong work.
"""
import importlib

import numpy as np

from fastbptt.bench.peers._common import Availability, PeerUnavailable, Prepared, result_of

# The peers, in the table's column order: name -> module under fastbptt.bench.peers.
# Each module is imported on first use (peer()), so naming a peer costs nothing.
PEERS = {"torch": "torch", "jax": "jax", "numba": "numba"}

# The largest max|peer - fastbptt| / max|fastbptt| per array that check_peer accepts. The
# peers sum the same products in other orders (other BLAS, XLA's own GEMMs), so results
# agree to rounding, growing with T and the sums' lengths, well inside these at the
# issue's shapes (bench/RESULTS.md, issue 14's section); a wrong gate or a missing term is
# off by far more.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


class PeerMismatch(AssertionError):
    """A peer's outputs or gradients differ from fastbptt's beyond TOLERANCE."""


def peer(name):
    """The module of the peer `name` (a key of PEERS); ValueError naming it otherwise."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; expected one of {', '.join(PEERS)}")
    return importlib.import_module(f"fastbptt.bench.peers.{PEERS[name]}")


def availability(names):
    """{name: Availability} of the peers `names`, in their order; unknown names raise
    ValueError (peer())."""
    return {name: peer(name).available() for name in names}


def expected_result(cell, problem):
    """fastbptt's outputs and gradients of the problem (the compiled kernels), named as a
    peer's result is: {"h": (T, B, H), "dx": ..., the Grads fields}."""
    import fastbptt
    from fastbptt.bench.problems import CELLS
    h, cache = getattr(fastbptt, CELLS[cell].forward)(*problem.args)
    grads = getattr(fastbptt, CELLS[cell].backward)(problem.dh, cache)
    return result_of(h, grads._asdict())


def check_peer(name, result, expected, where=""):
    """Raise PeerMismatch unless the peer's result has every array of expected with the
    same shape and dtype, each within TOLERANCE of it relative to its largest entry:
    max|peer - fastbptt| <= tol * max|fastbptt|. where says which row, for the message."""
    for key, want in expected.items():
        got = result.get(key)
        if got is None:
            raise PeerMismatch(f"{name} returned no {key}{where}")
        if got.shape != want.shape or got.dtype != want.dtype:
            raise PeerMismatch(f"{name}'s {key} is {got.dtype} {got.shape}, fastbptt's "
                               f"{want.dtype} {want.shape}{where}")
        tol = TOLERANCE[want.dtype.name]
        scale = float(np.max(np.abs(want), initial=0.0))
        error = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
        if not error <= tol * max(scale, np.finfo(want.dtype).tiny):
            raise PeerMismatch(f"{name}'s {key} differs from fastbptt's{where}: max |diff| "
                               f"{error:.3g}, max |fastbptt| {scale:.3g}, tolerance "
                               f"{tol:g} of it")


__all__ = ["PEERS", "TOLERANCE", "Availability", "PeerMismatch", "PeerUnavailable",
           "Prepared", "availability", "check_peer", "expected_result", "peer", "result_of"]
