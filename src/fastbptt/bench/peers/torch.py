"""The PyTorch peer: torch.nn.RNN/LSTM/GRU (CPU) holding the problem's weights, timed as
training runs it: forward over all steps, out.backward(dh), the gradients of the input,
the initial states and every parameter (reset to None before each call, as zero_grad
does). Its intra-op threads are set to the row's count here, in prepare: the harness's
thread_limit sets them only when torch is loaded as the block starts, and the first row
imports torch inside it (so that row ran at torch's default, all cores)."""
import numpy as np

from fastbptt.bench.peers._common import PeerUnavailable, Prepared, import_available, result_of
from fastbptt.cells.spec import get_spec

NAME = "torch"
# torch.nn's parameter names and fastbptt's gradient names, in the same layout
_PARAMETERS = {"weight_ih_l0": "W_ih", "weight_hh_l0": "W_hh", "bias_ih_l0": "b_ih",
               "bias_hh_l0": "b_hh"}


def available():
    return import_available("torch")


def prepare(cell, problem, threads=1):
    """Prepared(run, result) of torch.nn's module of the cell; run() returns x.grad."""
    try:
        import torch
    except ImportError as exc:
        raise PeerUnavailable(f"not importable ({exc})") from None
    torch.set_num_threads(threads)
    T, B, I = problem.x.shape
    H = problem.W_hh.shape[1]
    dtype = torch.float32 if problem.x.dtype == np.float32 else torch.float64
    module = getattr(torch.nn, get_spec(cell).torch_name)(I, H).to(dtype)
    with torch.no_grad():
        for name, field in _PARAMETERS.items():
            getattr(module, name).copy_(torch.from_numpy(getattr(problem, field)))
    x = torch.from_numpy(problem.x.copy()).requires_grad_()
    states = [torch.from_numpy(state[None].copy()).requires_grad_()
              for state in problem.states]          # torch wants (layers, B, H)
    state_arg = tuple(states) if len(states) > 1 else states[0]   # LSTM: (h0, c0)
    dh = torch.from_numpy(problem.dh)
    leaves = [x, *states, *module.parameters()]

    def run():
        for leaf in leaves:
            leaf.grad = None
        out, _ = module(x, state_arg)
        out.backward(dh)
        return x.grad

    run()
    grads = {"dx": x.grad.numpy().copy()}
    for name, state in zip(("dh0", "dc0"), states):
        grads[name] = state.grad[0].numpy().copy()
    for name, field in _PARAMETERS.items():
        grads["d" + field] = getattr(module, name).grad.numpy().copy()
    with torch.no_grad():   # the outputs, from the same module and inputs
        h = module(x, state_arg)[0].numpy().copy()
    return Prepared(run, result_of(h, grads))
