"""The LSTM with a projection (LSTMP, torch's proj_size, issue 18): `fastbptt bench
--proj-size P`.

The timed unit is problems.py's, a forward and a backward over all T steps with dh at
every step, of the projected LSTM (lstm_forward's W_hr): h_t = W_hr (o_t tanh(c_t)), h
(B, P), c (B, H). Per row (shape, dtype, thread count), interleaved:

- compiled: fastbptt.lstm_forward(..., W_hr=) + lstm_backward;
- lstm: the plain compiled LSTM of the same T, B, I, H (no projection): projected over
  plain is what the projection costs or saves (W_hh is 4H x P instead of 4H x H, and one
  more (B x H)(H x P) product per step);
- torch: torch.nn.LSTM(I, H, proj_size=P) on the same weights, input, states and dh,
  its outputs and gradients checked against fastbptt's first (peers.check_peer), when
  torch is importable;
- reference: fastbptt.reference's twin, within the reference budget.

torch_speedup is torch ms / compiled ms (above 1: fastbptt is faster), lstm_ratio
compiled ms / lstm ms; <backend>_faults the median minor page faults per call
(problems.fault_entries). Figures belong in bench/RESULTS.md, measured on a quiet machine.
"""
import warnings
from dataclasses import dataclass

import numpy as np

import fastbptt
from fastbptt.bench.harness import thread_limit, time_interleaved
from fastbptt.bench.peers import PeerUnavailable, check_peer, result_of
from fastbptt.bench.problems import (
    REFERENCE_BUDGET,
    estimated_reference_seconds,
    fault_entries,
    make_problem,
    runner,
)

# The row: the medium PTB model's sizes with a projection to 256.
PROJECTION_SHAPES = [(35, 20, 650, 650)]
PROJ_SIZE = 256


@dataclass(frozen=True)
class ProjectedProblem:
    """The arguments of one projected forward+backward."""
    x: np.ndarray        # (T, B, I)
    h0: np.ndarray       # (B, P)
    c0: np.ndarray       # (B, H)
    W_ih: np.ndarray     # (4H, I)
    W_hh: np.ndarray     # (4H, P)
    b_ih: np.ndarray     # (4H,)
    b_hh: np.ndarray     # (4H,)
    W_hr: np.ndarray     # (P, H)
    dh: np.ndarray       # (T, B, P), dL/dh_t at every step

    @property
    def args(self):
        """lstm_forward's positional arguments (W_hr goes by keyword)."""
        return (self.x, self.h0, self.c0, self.W_ih, self.W_hh, self.b_ih, self.b_hh)


def make_projected_problem(T, B, I, H, P, dtype, seed=0):
    """A random problem initialised like torch.nn.LSTM (every weight U(-1/sqrt(H),
    1/sqrt(H))); x, the states and dh standard normal."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-k, k, shape).astype(dtype)

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return ProjectedProblem(x=normal(T, B, I), h0=normal(B, P), c0=normal(B, H),
                            W_ih=uniform(4 * H, I), W_hh=uniform(4 * H, P),
                            b_ih=uniform(4 * H), b_hh=uniform(4 * H), W_hr=uniform(P, H),
                            dh=normal(T, B, P))


def projected_flops(T, B, I, H, P):
    """FLOPs of one projected forward+backward, counting the matrix products as
    problems.flops does (each product once forward, twice backward, 2 FLOPs a
    multiply-add): the gates [x_t, h_{t-1}] (B, I+P) times (I+P, 4H), and the projection
    m_t (B, H) times (H, P): 6*T*B*((I+P)*4H + H*P)."""
    return 6 * T * B * ((I + P) * 4 * H + H * P)


def api_run(module, problem):
    """The timed unit on fastbptt or fastbptt.reference: the projected forward over all
    steps, then its backward with dh at every step."""
    forward, backward = module.lstm_forward, module.lstm_backward
    args, W_hr, dh = problem.args, problem.W_hr, problem.dh

    def run():
        _, cache = forward(*args, W_hr=W_hr)
        return backward(dh, cache)

    return run


def expected_projected_result(problem):
    """fastbptt's outputs and gradients of the problem, named as a peer's result is."""
    h, cache = fastbptt.lstm_forward(*problem.args, W_hr=problem.W_hr)
    grads = fastbptt.lstm_backward(problem.dh, cache)
    return result_of(h, grads._asdict())


def prepare_torch(problem):
    """(run, result) of torch.nn.LSTM(I, H, proj_size=P) holding the problem's weights:
    run() is forward, out.backward(dh) with every gradient reset first; result as a
    peer's. PeerUnavailable when torch cannot be imported."""
    try:
        import torch
    except ImportError as exc:
        raise PeerUnavailable(f"not importable ({exc})") from None
    T, B, I = problem.x.shape
    P, H = problem.W_hr.shape
    dtype = torch.float32 if problem.x.dtype == np.float32 else torch.float64
    module = torch.nn.LSTM(I, H, proj_size=P).to(dtype)
    fields = {"weight_ih_l0": "W_ih", "weight_hh_l0": "W_hh", "bias_ih_l0": "b_ih",
              "bias_hh_l0": "b_hh", "weight_hr_l0": "W_hr"}
    with torch.no_grad():
        for name, field in fields.items():
            getattr(module, name).copy_(torch.from_numpy(getattr(problem, field)))
    x = torch.from_numpy(problem.x.copy()).requires_grad_()
    h0 = torch.from_numpy(problem.h0[None].copy()).requires_grad_()
    c0 = torch.from_numpy(problem.c0[None].copy()).requires_grad_()
    dh = torch.from_numpy(problem.dh)
    leaves = [x, h0, c0, *module.parameters()]

    def run():
        for leaf in leaves:
            leaf.grad = None
        out, _ = module(x, (h0, c0))
        out.backward(dh)
        return x.grad

    with warnings.catch_warnings():
        # torch says once per process that oneDNN has no projections (it runs its ATen
        # path instead): the first call is here, so the table is not interrupted by it
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported")
        run()
    grads = {"dx": x.grad.numpy().copy(), "dh0": h0.grad[0].numpy().copy(),
             "dc0": c0.grad[0].numpy().copy()}
    for name, field in fields.items():
        grads["d" + field] = getattr(module, name).grad.numpy().copy()
    with torch.no_grad():
        h = module(x, (h0, c0))[0].numpy().copy()
    return run, result_of(h, grads)


def measure_projection_rows(shapes=PROJECTION_SHAPES, dtypes=("float32",), proj_size=PROJ_SIZE,
                            *, threads=(1,), repeat=None, torch=True, reference=True,
                            reference_budget=REFERENCE_BUDGET, seed=0):
    """Yield one row (a JSON-ready dict) per shape (T, B, I, H), dtype and thread count
    (see the module docstring). torch's result is checked before it is timed
    (PeerMismatch when it differs); torch not importable: torch_ms None and
    torch_skipped the reason. ValueError unless 0 < proj_size < H for every shape."""
    for shape in shapes:
        T, B, I, H = shape
        if not 0 < proj_size < H:
            raise ValueError(f"proj_size must lie in (0, H) = (0, {H}) for the shape "
                             f"{shape}, got {proj_size}")
        for dtype in dtypes:
            problem = make_projected_problem(T, B, I, H, proj_size, dtype, seed)
            plain = make_problem("lstm", T, B, I, H, dtype, seed)
            work = projected_flops(T, B, I, H, proj_size)
            skip = reference and reference_budget is not None and \
                estimated_reference_seconds("lstm", T, B, I, H) > reference_budget
            where = f" at lstm proj_size={proj_size} {','.join(map(str, shape))} " \
                    f"{np.dtype(dtype).name}"
            for n in threads:
                row = {"shape": list(shape), "proj_size": proj_size,
                       "dtype": np.dtype(dtype).name, "cell": "lstm", "threads": n,
                       "flops": work}
                with thread_limit(n):
                    runs = {"compiled": api_run(fastbptt, problem),
                            "lstm": runner("lstm", "compiled", plain)}
                    if reference and not skip:
                        runs["reference"] = api_run(fastbptt.reference, problem)
                    if torch:
                        try:
                            run, result = prepare_torch(problem)
                        except PeerUnavailable as exc:
                            row["torch_skipped"] = str(exc)
                        else:
                            check_peer("torch", result, expected_projected_result(problem),
                                       where)
                            runs["torch"] = run
                    timings = time_interleaved(runs, repeat)
                for backend, timing in timings.items():
                    row[f"{backend}_ms"] = timing.median * 1e3
                    row[f"{backend}_times_ms"] = [t * 1e3 for t in timing.times]
                    row.update(fault_entries(backend, timing))
                compiled = row["compiled_ms"]
                row["compiled_gflops"] = work / compiled / 1e6
                row["lstm_ratio"] = compiled / row["lstm_ms"]
                if reference:
                    row["reference_skipped"] = skip
                    row["speedup"] = None if skip else row["reference_ms"] / compiled
                if torch:
                    row["torch_speedup"] = (row["torch_ms"] / compiled if "torch_ms" in row
                                            else None)
                yield row


def projection_table_lines(rows):
    """The rows as a Markdown table, one line per row as it is measured."""
    yield ("| T,B,I,H | P | dtype | threads | compiled ms | GFLOP/s | plain LSTM ms "
           "| projected/plain | torch ms | torch/compiled | reference ms |")
    yield "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"

    def ms(value):
        return "-" if value is None else f"{value:.3f}"

    def ratio(value):
        return "-" if value is None else f"{value:.2f}x"

    for row in rows:
        yield (f"| {','.join(map(str, row['shape']))} | {row['proj_size']} | {row['dtype']} "
               f"| {row['threads']} | {ms(row['compiled_ms'])} | {row['compiled_gflops']:.1f} "
               f"| {ms(row['lstm_ms'])} | {ratio(row['lstm_ratio'])} "
               f"| {ms(row.get('torch_ms'))} | {ratio(row.get('torch_speedup'))} "
               f"| {ms(row.get('reference_ms'))} |")
