"""The embedding lookup: fastbptt.embedding_forward/backward against their reference twins,
hand-computed values, finite differences (float64), torch.nn.Embedding (when installed),
padding_idx, add_to, the Embedding layer and its state dict, the backend switch, bad
input; and tied input/output weights against torch.
"""
import numpy as np
import pytest

import fastbptt
import fastbptt.runtime.backend
from _helpers import DTYPES, assert_close, raises_naming, relative_error, tol_for
from fastbptt import reference

IMPLS = {"compiled": fastbptt, "reference": reference}
impl_param = pytest.mark.parametrize("impl", list(IMPLS))
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)

# Index shapes: a scalar, 1-D, the time-major (T, B) of a language model, 3-D, empty.
SHAPES = [(), (7,), (5, 3), (2, 3, 4), (0,), (0, 3)]


def make_problem(shape, V, D, dtype=np.float64, seed=0, repeats=True):
    rng = np.random.default_rng(seed)
    # few distinct values, so that indices repeat (the case np.add.at exists for)
    high = max(1, min(V, 3)) if repeats else V
    indices = rng.integers(0, high, shape)
    weight = rng.standard_normal((V, D)).astype(dtype)
    d_out = rng.standard_normal(tuple(shape) + (D,)).astype(dtype)
    return indices, weight, d_out


def run(impl, indices, weight, d_out, padding_idx=None, add_to=None):
    m = IMPLS[impl]
    out, cache = m.embedding_forward(indices, weight, padding_idx)
    return out, m.embedding_backward(d_out, cache, add_to=add_to)


# ------------------------------------------------------------------ compiled == reference

@dtype_param
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_compiled_matches_reference(shape, dtype, padding_idx):
    indices, weight, d_out = make_problem(shape, 6, 5, dtype)
    out, dW = run("compiled", indices, weight, d_out, padding_idx)
    out_ref, dW_ref = run("reference", indices, weight, d_out, padding_idx)
    assert out.dtype == dtype and dW.dtype == dtype
    assert out.shape == tuple(shape) + (5,) and dW.shape == (6, 5)
    np.testing.assert_array_equal(out, out_ref)
    rtol, atol = tol_for(dtype)
    assert_close(dW, dW_ref, rtol, atol)


@dtype_param
def test_compiled_matches_reference_at_a_word_model_size(dtype):
    # many repeats of a few frequent words among a long tail, as in text
    rng = np.random.default_rng(3)
    V, D = 1000, 64
    indices = np.minimum(rng.zipf(1.3, (35, 20)) - 1, V - 1)
    weight = rng.standard_normal((V, D)).astype(dtype)
    d_out = rng.standard_normal((35, 20, D)).astype(dtype)
    _, dW = run("compiled", indices, weight, d_out, padding_idx=0)
    _, dW_ref = run("reference", indices, weight, d_out, padding_idx=0)
    assert_close(dW, dW_ref, *tol_for(dtype))


@impl_param
def test_hand_computed_values(impl):
    weight = np.arange(12, dtype=np.float64).reshape(4, 3)
    indices = np.array([[2, 0], [2, 3]])
    d_out = np.array([[[1, 2, 3], [4, 5, 6]], [[10, 20, 30], [7, 8, 9]]], np.float64)
    out, dW = run(impl, indices, weight, d_out)
    np.testing.assert_array_equal(out, [[[6, 7, 8], [0, 1, 2]], [[6, 7, 8], [9, 10, 11]]])
    # row 2 is used twice: both gradients add up; row 1 is never used
    np.testing.assert_array_equal(dW, [[4, 5, 6], [0, 0, 0], [11, 22, 33], [7, 8, 9]])
    _, dW_pad = run(impl, indices, weight, d_out, padding_idx=2)
    np.testing.assert_array_equal(dW_pad, [[4, 5, 6], [0, 0, 0], [0, 0, 0], [7, 8, 9]])


@impl_param
def test_scalar_index_and_python_lists(impl):
    m = IMPLS[impl]
    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    out, cache = m.embedding_forward(2, weight)
    assert out.shape == (2,) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [4, 5])
    np.testing.assert_array_equal(m.embedding_backward(np.ones(2, np.float32), cache),
                                  [[0, 0], [0, 0], [1, 1]])
    out, _ = m.embedding_forward([[0, 1], [1, 1]], weight)
    assert out.shape == (2, 2, 2)


@pytest.mark.parametrize("index_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8,
                                         np.uint16, np.uint32, np.uint64])
@impl_param
def test_every_integer_dtype(impl, index_dtype):
    indices, weight, d_out = make_problem((4, 3), 5, 2)
    out, dW = run(impl, indices.astype(index_dtype), weight, d_out)
    out64, dW64 = run(impl, indices, weight, d_out)
    np.testing.assert_array_equal(out, out64)
    np.testing.assert_array_equal(dW, dW64)


@dtype_param
@impl_param
def test_empty_sizes(impl, dtype):
    m = IMPLS[impl]
    for shape, V, D in [((0,), 4, 3), ((2, 0), 4, 3), ((3,), 4, 0), ((0,), 0, 3)]:
        weight = np.ones((V, D), dtype)
        out, cache = m.embedding_forward(np.zeros(shape, np.int64), weight)
        assert out.shape == shape + (D,) and out.dtype == dtype
        dW = m.embedding_backward(np.ones(shape + (D,), dtype), cache)
        assert dW.shape == (V, D) and dW.dtype == dtype and not dW.any()


# ------------------------------------------------------------------ the arrays' contract

@impl_param
def test_layouts_give_identical_results_and_inputs_are_not_written(impl):
    indices, weight, d_out = make_problem((6, 4), 5, 3)
    out, dW = run(impl, indices, weight, d_out)
    saved = [a.copy() for a in (indices, weight, d_out)]
    views = {
        "F": (np.asfortranarray(indices), np.asfortranarray(weight), np.asfortranarray(d_out)),
        "reversed": (indices[::-1].copy()[::-1], weight[::-1].copy()[::-1],
                     d_out[::-1].copy()[::-1]),
    }
    for name, (i, w, d) in views.items():
        for a in (i, w, d):
            a.flags.writeable = False
        o2, dW2 = run(impl, i, w, d)
        np.testing.assert_array_equal(o2, out, err_msg=name)
        np.testing.assert_array_equal(dW2, dW, err_msg=name)
    for a, s in zip((indices, weight, d_out), saved):
        np.testing.assert_array_equal(a, s)


@impl_param
def test_the_cache_keeps_its_own_indices(impl):
    indices, weight, d_out = make_problem((5,), 4, 2)
    m = IMPLS[impl]
    _, cache = m.embedding_forward(indices, weight)
    expected = run(impl, indices.copy(), weight, d_out)[1]
    indices[:] = 0   # the caller reuses the array before backward
    np.testing.assert_array_equal(m.embedding_backward(d_out, cache), expected)


@dtype_param
@impl_param
def test_add_to_adds_in_place(impl, dtype):
    indices, weight, d_out = make_problem((4, 3), 5, 2, dtype)
    _, dW = run(impl, indices, weight, d_out, padding_idx=1)
    base = np.random.default_rng(1).standard_normal((5, 2)).astype(dtype)
    total = base.copy()
    _, returned = run(impl, indices, weight, d_out, padding_idx=1, add_to=total)
    assert returned is total
    assert_close(total, base + dW, *tol_for(dtype))
    # the padding row of add_to keeps what it had: the lookup adds nothing there
    np.testing.assert_array_equal(total[1], base[1])


@impl_param
def test_add_to_overlapping_d_out_reads_d_out_first(impl):
    # d_out is a view of add_to's memory: the result is as if d_out had been copied
    m = IMPLS[impl]
    weight = np.zeros((3, 2))
    indices = np.array([0, 0, 2])
    _, cache = m.embedding_forward(indices, weight)
    buf = np.arange(6, dtype=np.float64).reshape(3, 2)
    expected = buf + run(impl, indices, weight, buf.copy())[1]
    np.testing.assert_array_equal(m.embedding_backward(buf, cache, add_to=buf), expected)


# ------------------------------------------------------------------ finite differences

@impl_param
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_weight_gradient_matches_finite_differences(impl, padding_idx):
    """L = sum(out * d_out) with the padding row held fixed (torch's rule: it is not
    trained); its central-difference gradient must equal backward's dW."""
    indices, weight, d_out = make_problem((4, 5), 5, 3, seed=2, repeats=False)
    indices[0, :3] = 2   # a repeated index, which is also the padding row when tested
    m = IMPLS[impl]
    _, cache = m.embedding_forward(indices, weight, padding_idx)
    dW = m.embedding_backward(d_out, cache)

    def loss(w):
        return float(np.sum(m.embedding_forward(indices, w, padding_idx)[0] * d_out))

    eps, numeric = 1e-6, np.zeros_like(weight)
    for idx in np.ndindex(weight.shape):
        if idx[0] == padding_idx:
            continue
        plus, minus = weight.copy(), weight.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
    assert np.max(np.abs(numeric)) > 1e-3
    assert relative_error(dW, numeric) < 1e-6


# ------------------------------------------------------------------ the layer

def test_layer_init_is_standard_normal_with_the_padding_row_zeroed():
    emb = fastbptt.Embedding(2000, 50, padding_idx=-3, dtype=np.float64, seed=0)
    w = emb.weight
    assert w.shape == (2000, 50) and w.dtype == np.float64 and emb.padding_idx == 1997
    assert not w[1997].any()
    rest = np.delete(w, 1997, axis=0)
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 1) < 0.01
    same = fastbptt.Embedding(2000, 50, padding_idx=-3, dtype=np.float64, seed=0)
    np.testing.assert_array_equal(same.weight, w)
    assert fastbptt.Embedding(4, 3).weight.dtype == np.float32


@pytest.mark.parametrize("backend", [None, "compiled", "reference"])
def test_layer_forward_backward(backend):
    emb = fastbptt.Embedding(10, 4, padding_idx=0, dtype=np.float64, seed=1, backend=backend)
    indices = np.array([[0, 3, 3], [9, 0, 1]])
    out = emb.forward(indices)
    np.testing.assert_array_equal(out, emb.weight[indices])
    d_out = np.random.default_rng(0).standard_normal(out.shape)
    grads = emb.backward(d_out)
    assert set(grads) == {"weight"}
    _, cache = reference.embedding_forward(indices, emb.weight, 0)
    np.testing.assert_allclose(grads["weight"], reference.embedding_backward(d_out, cache),
                               rtol=1e-12)
    assert not grads["weight"][0].any()


def test_layer_follows_the_backend_switch_unless_pinned():
    emb = fastbptt.Embedding(5, 2, seed=0)
    with fastbptt.use_backend("reference"):
        emb.forward([1, 2])
    assert type(emb._cache).__module__ == "fastbptt.reference.embedding"
    emb.backend = "compiled"
    with fastbptt.use_backend("reference"):
        emb.forward([1, 2])
    assert type(emb._cache).__module__ == "fastbptt.nn.embedding"


def test_backward_follows_its_cache():
    weight = np.ones((4, 2))
    with fastbptt.use_backend("reference"):
        _, cache = fastbptt.embedding_forward([1, 1], weight)
    assert type(cache).__module__.startswith("fastbptt.reference")
    dW = fastbptt.embedding_backward(np.ones((2, 2)), cache)   # reference, by the cache
    np.testing.assert_array_equal(dW[1], [2, 2])


def test_layer_state_dict_round_trip():
    a = fastbptt.Embedding(6, 3, seed=0)
    b = fastbptt.Embedding(6, 3, seed=1)
    state = a.state_dict()
    assert set(state) == {"weight"} and state["weight"] is not a.weight
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.weight, a.weight)
    state["weight"][:] = 0
    assert a.weight.any() and b.weight.any()   # copies both ways
    b.load_state_dict({"weight": np.ones((6, 3), np.float64)})
    assert b.weight.dtype == np.float32
    with pytest.raises(KeyError, match="unexpected"):
        b.load_state_dict({"weight": a.weight, "bias": a.weight})
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({})
    raises_naming(ValueError, [r"state_dict\['weight'\]", r"\(6, 3\)"],
                  lambda: b.load_state_dict({"weight": np.ones((5, 3))}))
    raises_naming(TypeError, [r"state_dict\['weight'\]", "float"],
                  lambda: b.load_state_dict({"weight": np.ones((6, 3), int)}))


def test_layer_backward_before_forward():
    with pytest.raises(RuntimeError, match="forward"):
        fastbptt.Embedding(3, 2).backward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize("kwargs, exc, needles", [
    ({"num_embeddings": 2.0}, TypeError, ["num_embeddings", "int"]),
    ({"num_embeddings": -1}, ValueError, ["num_embeddings", ">= 0"]),
    ({"embedding_dim": True}, TypeError, ["embedding_dim", "int"]),
    ({"padding_idx": 5}, ValueError, ["padding_idx", r"\[-5, 5\)"]),
    ({"padding_idx": -6}, ValueError, ["padding_idx"]),
    ({"padding_idx": 1.0}, TypeError, ["padding_idx", "int or None"]),
    ({"dtype": np.float16}, TypeError, ["dtype", "float32 or float64"]),
    ({"backend": "gpu"}, ValueError, ["backend"]),
])
def test_layer_bad_arguments(kwargs, exc, needles):
    args = {"num_embeddings": 5, "embedding_dim": 3, **kwargs}
    raises_naming(exc, needles, lambda: fastbptt.Embedding(**args))


# ------------------------------------------------------------------ bad input

def _forward_with(impl, indices=None, weight=None, padding_idx=None):
    m = IMPLS[impl]
    indices = np.array([[1, 2], [0, 3]]) if indices is None else indices
    weight = np.ones((4, 3)) if weight is None else weight
    return lambda: m.embedding_forward(indices, weight, padding_idx)


BAD_FORWARD = [
    ({"indices": np.array([0, 4])}, ValueError, [r"\[0, 4\)", "got 4", r"position \(1,\)"]),
    ({"indices": np.array([[0, 1], [-1, 2]])}, ValueError, ["got -1", r"position \(1, 0\)"]),
    ({"indices": np.array([2**63 + 1], np.uint64)}, ValueError, [r"\[0, 4\)"]),
    ({"indices": np.array([0.0, 1.0])}, TypeError, ["indices", "integer dtype", "float64"]),
    ({"indices": 1.0}, TypeError, ["indices", "integer"]),
    ({"indices": np.array([True, False])}, TypeError, ["indices", "integer", "bool"]),
    ({"indices": True}, TypeError, ["indices", "bool"]),
    ({"indices": [[1, 2], [3]]}, TypeError, ["indices"]),
    ({"indices": np.array(["a"])}, TypeError, ["indices"]),
    ({"indices": np.broadcast_to(np.int64(0), (2**31,))}, ValueError, ["limit"]),
    ({"weight": np.ones((4, 3), np.int64)}, TypeError, ["weight", "float32 or float64"]),
    ({"weight": np.ones((4, 3), np.float16)}, TypeError, ["weight"]),
    ({"weight": np.ones(12)}, ValueError, ["weight", "2-D"]),
    ({"weight": np.ones((4, 3), ">f8")}, TypeError, ["weight"]),
    ({"padding_idx": 4}, ValueError, ["padding_idx", r"\[-4, 4\)"]),
    ({"padding_idx": "0"}, TypeError, ["padding_idx"]),
]


@impl_param
@pytest.mark.parametrize("args, exc, needles", BAD_FORWARD,
                         ids=[f"{next(iter(a))}-{i}" for i, (a, _, _) in enumerate(BAD_FORWARD)])
def test_bad_forward_arguments(impl, args, exc, needles):
    raises_naming(exc, needles, _forward_with(impl, **args))


@impl_param
def test_bad_backward_arguments(impl):
    m = IMPLS[impl]
    other = reference if impl == "compiled" else fastbptt
    indices = np.array([[1, 2], [0, 3]])
    _, cache = m.embedding_forward(indices, np.ones((4, 3)))
    _, other_cache = other.embedding_forward(indices, np.ones((4, 3)))
    good = np.ones((2, 2, 3))
    bw = m.embedding_backward if impl == "reference" else \
        fastbptt.runtime.backend.implementation("embedding_backward", "compiled")
    cases = [
        ((good.astype(np.float32), cache), {}, TypeError, ["mixed dtypes", "d_out"]),
        ((good.astype(int), cache), {}, TypeError, ["d_out", "float32 or float64"]),
        ((np.ones((2, 3)), cache), {}, ValueError, ["d_out", r"\(2, 2, 3\)"]),
        ((np.ones((2, 2, 4)), cache), {}, ValueError, ["d_out", r"\(2, 2, 3\)"]),
        ((good, None), {}, TypeError, ["cache"]),
        ((good, other_cache), {}, TypeError, ["cache"]),
        ((good, cache), {"add_to": [[0.0] * 3] * 4}, TypeError, ["add_to", "NumPy array"]),
        ((good, cache), {"add_to": np.zeros((4, 3), np.float32)}, TypeError, ["add_to", "float64"]),
        ((good, cache), {"add_to": np.zeros((3, 4))}, ValueError, ["add_to", r"\(4, 3\)"]),
        ((good, cache), {"add_to": np.zeros((3, 4)).T}, ValueError, ["add_to", "C-contiguous"]),
    ]
    readonly = np.zeros((4, 3))
    readonly.flags.writeable = False
    cases.append(((good, cache), {"add_to": readonly}, ValueError, ["add_to", "writeable"]))
    for args, kwargs, exc, needles in cases:
        raises_naming(exc, needles, lambda: bw(*args, **kwargs))
    assert not readonly.any()


# ------------------------------------------------------------------ torch

def _torch():
    return pytest.importorskip("torch")


@dtype_param
@pytest.mark.parametrize("padding_idx", [None, 3, -2])
def test_against_torch_embedding(dtype, padding_idx):
    torch = _torch()
    V, D = 9, 4
    ours = fastbptt.Embedding(V, D, padding_idx=padding_idx, dtype=dtype, seed=0)
    theirs = torch.nn.Embedding(V, D, padding_idx=padding_idx,
                                dtype=torch.float32 if dtype == np.float32 else torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    indices = np.random.default_rng(1).integers(0, V, (6, 5))
    indices[0, :4] = (padding_idx or 0) % V   # the padding row is looked up too
    out = ours.forward(indices)
    t_out = theirs(torch.from_numpy(indices))
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    d_out = np.random.default_rng(2).standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(d_out))
    assert_close(ours.backward(d_out)["weight"], theirs.weight.grad.numpy(), *tol_for(dtype))
    # and back: torch's state dict loads into ours
    fresh = fastbptt.Embedding(V, D, padding_idx=padding_idx, dtype=dtype, seed=5)
    fresh.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(fresh.weight, ours.weight)


def test_torch_padding_row_init_matches():
    torch = _torch()
    t = torch.nn.Embedding(5, 3, padding_idx=-1)
    assert not t.weight[4].any()
    assert not fastbptt.Embedding(5, 3, padding_idx=-1).weight[4].any()


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_tied_weights_against_torch(impl):
    """Embedding -> LSTM -> softmax head whose W is the embedding matrix (Press and Wolf
    2017; the PyTorch word-language-model example with --tied): the loss and every
    gradient, the tied weight's being the lookup's plus the head's, as torch sums them."""
    torch = _torch()
    V, D, T, B = 11, 6, 7, 3
    rng = np.random.default_rng(0)
    emb = fastbptt.Embedding(V, D, padding_idx=0, dtype=np.float64, seed=0, backend=impl)
    lstm = fastbptt.LSTM(D, D, dtype=np.float64, seed=1, backend=impl)
    bias = rng.uniform(-0.1, 0.1, V)
    tokens = rng.integers(0, V, (T, B))
    targets = rng.integers(1, V, (T, B))
    loss_fn = IMPLS[impl].softmax_cross_entropy

    x = emb.forward(tokens)
    out, _ = lstm.forward(x)
    loss, g = loss_fn(out, emb.weight, bias, targets, ignore_index=0)
    dx, grads = lstm.backward(g.dh)
    head_dW = g.dW.copy()
    dW = emb.backward(dx, add_to=g.dW)["weight"]     # the tied gradient: one line
    assert dW is g.dW

    t_emb = torch.nn.Embedding(V, D, padding_idx=0, dtype=torch.float64)
    t_lstm = torch.nn.LSTM(D, D, dtype=torch.float64)
    t_emb.load_state_dict({k: torch.from_numpy(v) for k, v in emb.state_dict().items()})
    t_lstm.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    t_head = torch.nn.Linear(D, V, dtype=torch.float64)
    t_head.weight = t_emb.weight                   # torch's tying: one Parameter
    t_head.bias.data = torch.from_numpy(bias)
    t_out, _ = t_lstm(t_emb(torch.from_numpy(tokens)))
    t_loss = torch.nn.functional.cross_entropy(t_head(t_out).reshape(-1, V),
                                               torch.from_numpy(targets).reshape(-1),
                                               ignore_index=0)
    t_loss.backward()
    assert float(loss) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(dW, t_emb.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.db, t_head.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    for key, value in grads.items():
        np.testing.assert_allclose(value, getattr(t_lstm, key).grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=key)
    # both parts matter: the head's and the lookup's gradients are each non-zero
    assert np.abs(head_dW).max() > 1e-3 and np.abs(dW - head_dW).max() > 1e-3
    # the padding row gets the head's gradient only, in both libraries
    np.testing.assert_allclose(dW[0], head_dW[0], rtol=1e-12)
