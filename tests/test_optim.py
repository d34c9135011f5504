"""Optimizers and gradient clipping (fastbptt.training.optim): hand-computed steps, torch.optim as
the oracle over ten steps (skipped without torch), in-place updates of the caller's
arrays, checkpoints through np.savez, clipping against np.linalg.norm, bad input."""
import math

import numpy as np
import pytest

from fastbptt import SGD, Adagrad, Adam, Momentum, clip_grad_norm, clip_grad_value

DTYPES = (np.float32, np.float64)
# torch.optim against ours over ten steps: the same operations in the same order, so
# only last-bit differences (torch may fuse or reorder a multiply-add).
ORACLE_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((4, 3)).astype(dtype),
            "b": rng.standard_normal(4).astype(dtype),
            "s": rng.standard_normal((2, 2, 2)).astype(dtype)}


def _grads_like(params, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}


OPTIMIZERS = {
    "sgd": (SGD, {"lr": 0.1}),
    "momentum": (Momentum, {"lr": 0.1, "momentum": 0.9}),
    "nesterov": (Momentum, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    "adagrad": (Adagrad, {"lr": 0.1, "eps": 1e-10}),
    "adam": (Adam, {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}),
    "adam_beta1_big": (Adam, {"lr": 1e-2, "betas": (0.3, 0.5), "eps": 1e-6}),
}


# ------------------------------------------------------------------ hand-computed steps

def test_sgd_two_steps_by_hand():
    w = np.array([1.0, -2.0])
    opt = SGD({"w": w}, lr=0.5)
    opt.step({"w": np.array([2.0, 4.0])})
    np.testing.assert_array_equal(w, [0.0, -4.0])
    opt.step({"w": np.array([-1.0, 1.0])})
    np.testing.assert_array_equal(w, [0.5, -4.5])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_by_hand(nesterov):
    w = np.array([1.0])
    opt = Momentum({"w": w}, lr=0.1, momentum=0.5, nesterov=nesterov)
    opt.step({"w": np.array([2.0])})          # b = 2
    first = 1.0 - 0.1 * (2.0 + 0.5 * 2.0 if nesterov else 2.0)
    assert w[0] == pytest.approx(first, abs=1e-15)
    opt.step({"w": np.array([4.0])})          # b = 0.5 * 2 + 4 = 5
    second = first - 0.1 * (4.0 + 0.5 * 5.0 if nesterov else 5.0)
    assert w[0] == pytest.approx(second, abs=1e-15)


def test_adagrad_two_steps_by_hand():
    w = np.array([1.0, 1.0])
    opt = Adagrad({"w": w}, lr=0.1, eps=0.0)
    opt.step({"w": np.array([3.0, -4.0])})    # s = [9, 16]: w -= 0.1 * g / sqrt(s) = 0.1 sign(g)
    np.testing.assert_allclose(w, [0.9, 1.1], rtol=0, atol=1e-15)
    opt.step({"w": np.array([4.0, 3.0])})     # s = [25, 25]: w -= 0.1 * g / 5
    np.testing.assert_allclose(w, [0.9 - 0.08, 1.1 - 0.06], rtol=0, atol=1e-15)


def test_adam_two_steps_by_hand():
    w = np.array([0.0])
    opt = Adam({"w": w}, lr=0.1, betas=(0.5, 0.75), eps=0.0)
    # step 1: m = 0.5 * 2 = 1, v = 0.25 * 4 = 1; m_hat = 2, v_hat = 4: w -= 0.1 * 2 / 2
    opt.step({"w": np.array([2.0])})
    assert w[0] == pytest.approx(-0.1, abs=1e-15)
    # step 2: m = 0.5 + 0.5 * 4 = 2.5, v = 0.75 + 0.25 * 16 = 4.75
    # m_hat = 2.5 / 0.75, v_hat = 4.75 / 0.4375
    opt.step({"w": np.array([4.0])})
    expected = -0.1 - 0.1 * (2.5 / 0.75) / math.sqrt(4.75 / 0.4375)
    assert w[0] == pytest.approx(expected, rel=1e-14)
    assert opt.step_count == 2


# ------------------------------------------------------------------ torch.optim oracle

def _torch_optimizer(torch, name, tensors, kw):
    if name == "sgd":
        return torch.optim.SGD(tensors, lr=kw["lr"])
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(tensors, lr=kw["lr"], momentum=kw["momentum"],
                               nesterov=kw.get("nesterov", False))
    if name == "adagrad":
        return torch.optim.Adagrad(tensors, lr=kw["lr"], eps=kw["eps"])
    return torch.optim.Adam(tensors, lr=kw["lr"], betas=kw["betas"], eps=kw["eps"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_ten_steps_match_torch_optim(name, dtype):
    torch = pytest.importorskip("torch")
    cls, kw = OPTIMIZERS[name]
    params = _params(dtype)
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours = cls(params, **kw)
    theirs = _torch_optimizer(torch, name, list(tensors.values()), kw)
    for step in range(10):
        grads = _grads_like(params, seed=100 + step)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        theirs.step()
        ours.step(grads)
    for k, p in params.items():
        assert p.dtype == np.dtype(dtype)
        np.testing.assert_allclose(p, tensors[k].detach().numpy(),
                                   rtol=ORACLE_RTOL[p.dtype], atol=ORACLE_RTOL[p.dtype],
                                   err_msg=f"{name} {k}")


# ------------------------------------------------------------------ in place, read only

@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_updates_the_callers_arrays_and_reads_grads_only(name):
    cls, kw = OPTIMIZERS[name]
    params = _params(np.float64)
    arrays = dict(params)                  # the same array objects
    before = {k: v.copy() for k, v in params.items()}
    opt = cls(params, **kw)
    grads = _grads_like(params, seed=3)
    grads_before = {k: v.copy() for k, v in grads.items()}
    opt.step(grads)
    for k in params:
        assert params[k] is arrays[k]
        assert not np.array_equal(params[k], before[k]), k
        np.testing.assert_array_equal(grads[k], grads_before[k])


def test_layer_params_are_trained_in_place():
    from fastbptt import RNN
    layer = RNN(3, 4, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    opt = SGD(layer.params, lr=0.1)

    def loss():
        out, _ = layer.forward(x)
        return 0.5 * float(np.sum(out ** 2)), out

    first, out = loss()
    for _ in range(5):
        _, grads = layer.backward(out)
        opt.step(grads)
        value, out = loss()
    assert value < first


# ------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_round_trip_through_npz(name, tmp_path):
    cls, kw = OPTIMIZERS[name]
    params = _params(np.float32)
    opt = cls(params, **kw)
    for s in range(3):
        opt.step(_grads_like(params, seed=s))
    path = tmp_path / "opt.npz"
    np.savez(path, **opt.state_dict())

    resumed_params = {k: v.copy() for k, v in params.items()}
    resumed = cls(resumed_params, **{**kw, "lr": 0.5})
    with np.load(path) as saved:
        resumed.load_state_dict(saved)
    assert resumed.lr == opt.lr
    for s in range(3, 6):
        grads = _grads_like(params, seed=s)
        opt.step(grads)
        resumed.step(grads)
    for k in params:
        np.testing.assert_array_equal(resumed_params[k], params[k])


def test_load_state_dict_rejects_another_optimizer_and_bad_shapes():
    params = _params(np.float64)
    state = Adam(params).state_dict()
    with pytest.raises(ValueError, match="'Adam', not Adagrad"):
        Adagrad(params).load_state_dict(state)
    state["exp_avg.W"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"exp_avg\.W.*shape \(4, 3\)"):
        Adam(params).load_state_dict(state)


def test_state_dict_is_a_copy():
    params = _params(np.float64)
    opt = Momentum(params)
    opt.step(_grads_like(params, 0))
    state = opt.state_dict()
    state["momentum_buffer.W"][:] = 99
    assert not np.any(opt.state["momentum_buffer"]["W"] == 99)


# ------------------------------------------------------------------ clipping

@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm_returns_norm_before_and_scales_to_max_norm(dtype):
    grads = _grads_like(_params(dtype), seed=5)
    original = {k: v.copy() for k, v in grads.items()}
    expected = np.linalg.norm(np.concatenate([g.ravel().astype(np.float64)
                                              for g in original.values()]))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert isinstance(norm, float)
    assert norm == pytest.approx(expected, rel=rtol)
    assert norm > 1.0
    scale = 1.0 / (norm + 1e-6)
    for k, g in grads.items():
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, original[k] * scale, rtol=rtol)
    after = np.linalg.norm(np.concatenate([g.ravel().astype(np.float64)
                                           for g in grads.values()]))
    # torch's factor leaves the norm just below max_norm: max_norm * norm / (norm + 1e-6)
    assert after == pytest.approx(norm / (norm + 1e-6), rel=10 * rtol)
    assert after < 1.0


def test_clip_grad_norm_below_max_norm_leaves_grads_unchanged():
    grads = _grads_like(_params(np.float64), seed=6)
    original = {k: v.copy() for k, v in grads.items()}
    norm = clip_grad_norm(grads, max_norm=1e3)
    assert norm < 1e3
    for k in grads:
        np.testing.assert_array_equal(grads[k], original[k])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_non_finite_returns_norm_and_leaves_grads(bad):
    grads = _grads_like(_params(np.float64), seed=7)
    grads["b"][1] = bad
    original = {k: v.copy() for k, v in grads.items()}
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert not math.isfinite(norm)
    for k in grads:
        np.testing.assert_array_equal(grads[k], original[k])


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = _grads_like(_params(np.float64), seed=8)
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
               for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    torch_norm = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm=0.5))
    norm = clip_grad_norm(grads, max_norm=0.5)
    assert norm == pytest.approx(torch_norm, rel=1e-14)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value_clamps_in_place(dtype):
    grads = _grads_like(_params(dtype), seed=9)
    arrays = dict(grads)
    original = {k: v.copy() for k, v in grads.items()}
    assert clip_grad_value(grads, 0.5) is None
    for k, g in grads.items():
        assert g is arrays[k] and g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, np.clip(original[k], -0.5, 0.5))
    assert any(np.any(np.abs(v) > 0.5) for v in original.values())


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("cls", [SGD, Momentum, Adagrad, Adam])
@pytest.mark.parametrize("lr", [0.0, -1.0, np.nan, np.inf])
def test_bad_learning_rate(cls, lr):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        cls(_params(np.float64), lr=lr)


@pytest.mark.parametrize("betas, needle", [((1.0, 0.9), r"betas\[0\]"),
                                           ((0.9, -0.1), r"betas\[1\]"),
                                           ((0.9, np.nan), r"betas\[1\]")])
def test_bad_betas(betas, needle):
    with pytest.raises(ValueError, match=needle):
        Adam(_params(np.float64), betas=betas)
    with pytest.raises(TypeError, match="betas must be a pair"):
        Adam(_params(np.float64), betas=0.9)


def test_bad_momentum_and_nesterov():
    with pytest.raises(ValueError, match="momentum must lie in"):
        Momentum(_params(np.float64), momentum=1.0)
    with pytest.raises(ValueError, match="nesterov momentum needs momentum > 0"):
        Momentum(_params(np.float64), momentum=0.0, nesterov=True)
    with pytest.raises(TypeError, match="nesterov must be a bool"):
        Momentum(_params(np.float64), nesterov="yes")


def test_bad_params():
    with pytest.raises(TypeError, match=r"params\['i'\] must have dtype float32 or float64"):
        SGD({"i": np.arange(3)})
    with pytest.raises(TypeError, match=r"params\['l'\] must be a NumPy array"):
        SGD({"l": [1.0, 2.0]})
    with pytest.raises(TypeError, match="params must be a dict"):
        SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="params is empty"):
        SGD({})
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['w'\] is read-only"):
        SGD({"w": frozen})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_bad_grads_name_the_key_and_update_nothing(name):
    cls, kw = OPTIMIZERS[name]
    params = _params(np.float64)
    before = {k: v.copy() for k, v in params.items()}
    opt = cls(params, **kw)
    good = _grads_like(params, 1)
    cases = [
        ({k: v for k, v in good.items() if k != "b"}, ValueError, r"missing \['b'\]"),
        ({**good, "extra": np.zeros(1)}, ValueError, r"unexpected \['extra'\]"),
        ({**good, "W": np.zeros((3, 4))}, ValueError, r"grads\['W'\].*shape \(4, 3\)"),
        ({**good, "s": good["s"].astype(np.float32)}, ValueError,
         r"grads\['s'\].*dtype float64"),
        ({**good, "b": np.arange(4)}, TypeError, r"grads\['b'\].*float32 or float64"),
    ]
    for grads, exc, needle in cases:
        with pytest.raises(exc, match=needle):
            opt.step(grads)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_bad_clip_arguments():
    grads = _grads_like(_params(np.float64), 2)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
            clip_grad_norm(grads, bad)
        with pytest.raises(ValueError, match="clip_value must be a finite number > 0"):
            clip_grad_value(grads, bad)
    with pytest.raises(TypeError, match=r"grads\['i'\] must have dtype"):
        clip_grad_norm({"i": np.arange(3)}, 1.0)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_allocates_no_per_parameter_temporaries(name):
    """After the first step, a step's peak allocation stays far below one parameter's
    size: the updates go through the per-parameter scratch buffer (NumPy reports its
    array allocations to tracemalloc)."""
    import tracemalloc
    cls, kw = OPTIMIZERS[name]
    params = {"big": np.ones((256, 256)), "bias": np.ones(256)}   # 512 KiB + 2 KiB
    opt = cls(params, **kw)
    grads = {k: np.full_like(p, 0.5) for k, p in params.items()}
    opt.step(grads)
    tracemalloc.start()
    try:
        opt.step(grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < params["big"].nbytes // 16, f"peak {peak} bytes"
