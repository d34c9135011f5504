"""The JAX peer, written as a JAX user would: the cell as a step function scanned over
time (jax.lax.scan), its gradients by jax.vjp with dL/dh at every step as the cotangent,
forward and backward in one jax.jit function; the inputs on the device before timing,
each timed call ended by block_until_ready, the compilation paid while preparing.

    P = x W_ih^T + b_ih                  (T, B, G*H), one product for all steps
    scan over t: R_t = h_{t-1} W_hh^T + b_hh  (B, G*H), then the cell's gates and states
    (hs, vjp) = jax.vjp(forward, params, x, states);  vjp(dh) -> every gradient

Two process-wide settings, and how the peer keeps them from leaking:

- float64: JAX computes in float32 unless jax_enable_x64 is on, and that flag is global.
  The peer never sets it: a float64 problem is put on the device, compiled and every call
  run inside the `jax.enable_x64(True)` context (thread-local, restored on exit), so the
  float32 rows and the rest of the process see JAX as configured. The context's entry and
  exit are part of each timed float64 call.
- threads: XLA's CPU thread pool is sized once, when JAX's backend starts, from XLA_FLAGS.
  The peer starts it at the first row's thread count (one thread: no Eigen threading and
  one intra-op thread), unless XLA_FLAGS already names a thread setting, which wins; a row
  at another thread count, or any row when JAX's backend was started before the peer
  could set the flags, raises PeerUnavailable saying so. The flags alone do not hold
  XLA to one core: jax 0.10 at "one thread" used 1.9 CPU-seconds per second of a
  (50,64,1024) RNN call (bench/RESULTS.md, "JAX's thread count"), its CPU client sizing
  a pool of its own from the CPUs the process may run on. So the backend is started
  with the calling thread's CPU affinity narrowed to `threads` CPUs, which the client
  reads, and the affinity is restored at once (sched_setaffinity, where the OS has it).
"""
import contextlib
import functools
import os

import numpy as np

from fastbptt.bench.peers._common import PeerUnavailable, Prepared, import_available, result_of

NAME = "jax"
# The thread count the peer started XLA with (None: not started by the peer yet).
_started_threads = None
_THREAD_FLAGS = ("xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads")


def available():
    return import_available("jax")


def _start(threads):
    """Set XLA_FLAGS for `threads` before JAX's backend starts; PeerUnavailable when it
    started at another count."""
    global _started_threads
    if _started_threads is None:
        if _backend_started():
            raise PeerUnavailable("JAX's backend started before the peer could set its "
                                  "threads (XLA_FLAGS); run the benchmark in a new process")
        flags = os.environ.get("XLA_FLAGS", "")
        if not any(name in flags for name in _THREAD_FLAGS):
            ours = f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} " \
                   f"intra_op_parallelism_threads={threads}"
            os.environ["XLA_FLAGS"] = f"{flags} {ours}".strip()
        _start_backend(threads)
        _started_threads = threads
    elif threads != _started_threads:
        raise PeerUnavailable(f"JAX started with {_started_threads} thread(s) (XLA_FLAGS is "
                              f"read once); run --threads {threads} alone to time it there")


def _start_backend(threads):
    """Start JAX's CPU backend (and run one small jitted product, which makes its thread
    pools) with this thread's CPU affinity narrowed to `threads` CPUs, then restore it."""
    import jax
    import jax.numpy as jnp

    narrow = hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")
    before = os.sched_getaffinity(0) if narrow else None
    if narrow and threads < len(before):
        os.sched_setaffinity(0, sorted(before)[:threads])
    try:
        jax.devices("cpu")
        jax.jit(lambda a: a @ a)(jnp.ones((8, 8), jnp.float32)).block_until_ready()
    finally:
        if narrow:
            os.sched_setaffinity(0, before)


def _backend_started():
    """Whether JAX's backend is up already (its private probe; False where it is gone)."""
    try:
        from jax._src.xla_bridge import backends_are_initialized
    except ImportError:
        return False
    return backends_are_initialized()


def _steps(jnp, sigmoid):
    """cell -> step(W_hh, b_hh)(carry, P_t) -> (carry, h_t): one step of the recurrence
    after the input projection P_t (B, G*H); the carry is the states' tuple."""
    def rnn(W_hh, b_hh):
        def step(carry, P_t):
            (h,) = carry
            h = jnp.tanh(P_t + h @ W_hh.T + b_hh)
            return (h,), h
        return step

    def lstm(W_hh, b_hh):
        def step(carry, P_t):
            h, c = carry
            i, f, g, o = jnp.split(P_t + h @ W_hh.T + b_hh, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(g)
            h = sigmoid(o) * jnp.tanh(c)
            return (h, c), h
        return step

    def gru(W_hh, b_hh):
        def step(carry, P_t):
            (h,) = carry
            P_r, P_z, P_n = jnp.split(P_t, 3, axis=-1)
            R_r, R_z, R_n = jnp.split(h @ W_hh.T + b_hh, 3, axis=-1)
            r, z = sigmoid(P_r + R_r), sigmoid(P_z + R_z)
            n = jnp.tanh(P_n + r * R_n)      # the reset gate acts after W_hn, as torch's
            h = (1 - z) * n + z * h
            return (h,), h
        return step

    return {"rnn": rnn, "lstm": lstm, "gru": gru}


@functools.cache
def _forward_backward(cell):
    """The jitted forward+backward of the cell: (params, x, states, dh) -> (hs, grads of
    (params, x, states)). One jit function per cell; XLA compiles it per shape and dtype."""
    import jax
    import jax.numpy as jnp
    make_step = _steps(jnp, jax.nn.sigmoid)[cell]

    def forward(params, x, states):
        W_ih, W_hh, b_ih, b_hh = params
        P = x @ W_ih.T + b_ih
        _, hs = jax.lax.scan(make_step(W_hh, b_hh), states, P)
        return hs

    def forward_backward(params, x, states, dh):
        hs, vjp = jax.vjp(forward, params, x, states)
        return hs, vjp(dh)

    return jax.jit(forward_backward)


def prepare(cell, problem, threads=1):
    """Prepared(run, result) of the jitted scan; run() returns the blocked outputs."""
    try:
        import jax
    except ImportError as exc:
        raise PeerUnavailable(f"not importable ({exc})") from None
    _start(threads)
    x64 = problem.x.dtype == np.float64
    precision = (lambda: jax.enable_x64(True)) if x64 else contextlib.nullcontext
    fn = _forward_backward(cell)
    with precision():
        params, x, states, dh = jax.device_put(
            ((problem.W_ih, problem.W_hh, problem.b_ih, problem.b_hh), problem.x,
             tuple(problem.states), problem.dh))
        out = jax.block_until_ready(fn(params, x, states, dh))   # compiles

    if x64:
        def run():
            with jax.enable_x64(True):
                return jax.block_until_ready(fn(params, x, states, dh))
    else:
        def run():
            return jax.block_until_ready(fn(params, x, states, dh))

    hs, (dparams, dx, dstates) = out
    grads = {"dx": dx, **dict(zip(("dh0", "dc0"), dstates)),
             **dict(zip(("dW_ih", "dW_hh", "db_ih", "db_hh"), dparams))}
    return Prepared(run, result_of(np.asarray(hs), {k: np.asarray(v) for k, v in grads.items()}))
