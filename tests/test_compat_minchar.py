"""fastbptt.compat.minchar against the min-char-rnn script's own lossFun and sample (the
oracle, _minchar_script.py: the script verbatim, run in a namespace holding the
parameters as its globals), finite differences, dtypes as the script's, bad input. The
one-line swap into the script's globals: test_compat_dropin.py."""
import numpy as np
import pytest

from _helpers import raises_naming, relative_error
from _minchar_script import o_lossFun, o_sample
from fastbptt.compat import minchar


def _model(V=65, H=100, scale=0.01, seed=0, dtype=np.float64):
    """The script's initialisation (randn * 0.01, zero biases) or a larger scale."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((H, V)) * scale, rng.standard_normal((H, H)) * scale,
              rng.standard_normal((V, H)) * scale, rng.standard_normal((H, 1)) * scale,
              rng.standard_normal((V, 1)) * scale]
    hprev = np.tanh(rng.standard_normal((H, 1)))
    return [a.astype(dtype) for a in params], hprev.astype(dtype)


def _chunk(V, T, seed=1):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, V, T + 1).tolist()
    return data[:-1], data[1:]


def _assert_results(got, want, tol):
    """Every result as the script's: shape and dtype exactly, values to tol."""
    assert len(got) == 7
    for k, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"result {k}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"result {k}: dtype {a.dtype}, the script's {b.dtype}"
        err = relative_error(a.astype(np.float64), b.astype(np.float64))
        assert err <= tol, f"result {k}: relative error {err:.2e}"


@pytest.mark.parametrize("scale", [0.01, 0.3], ids=["script_init", "large_clipped"])
@pytest.mark.parametrize("T", [25, 1, 7])
def test_lossFun_matches_the_script(T, scale):
    (Wxh, Whh, Why, bh, by), hprev = _model(scale=scale)
    inputs, targets = _chunk(65, T)
    params = [a.copy() for a in (hprev, Wxh, Whh, Why, bh, by)]
    got = minchar.lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    want = o_lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    _assert_results(got, want, 1e-10)   # the package's float64 TOL
    if scale == 0.3 and T == 25:
        assert any(np.max(np.abs(d)) == 5 for d in want[1:6]), "clipping not exercised"
    for before, after in zip(params, (hprev, Wxh, Whh, Why, bh, by)):
        np.testing.assert_array_equal(before, after)      # the caller's arrays untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lossFun_dtypes_are_the_scripts(dtype):
    # The script's one-hot xs are float64, so its products are float64 whatever the
    # parameters' dtype: loss and h float64, gradients in np.zeros_like(param)'s dtype.
    (Wxh, Whh, Why, bh, by), hprev = _model(scale=0.1, dtype=dtype)
    inputs, targets = _chunk(65, 25)
    got = minchar.lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    want = o_lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    assert [np.asarray(a).dtype for a in want] == [np.float64] + [dtype] * 5 + [np.float64]
    # the script rounds into the low-precision accumulators at every step, compat once
    _assert_results(got, want, {np.float32: 2e-6, np.float16: 2e-3}[dtype])


def test_lossFun_mixed_and_integer_arguments_promote_as_the_script():
    (Wxh, Whh, Why, bh, by), hprev = _model(V=9, H=6, scale=0.3)
    inputs, targets = _chunk(9, 5)
    Whh32, hprev_int = Whh.astype(np.float32), np.ones((6, 1), int)
    got = minchar.lossFun(inputs, targets, hprev_int, Wxh, Whh32, Why, bh, by)
    want = o_lossFun(inputs, targets, hprev_int, Wxh, Whh32, Why, bh, by)
    _assert_results(got, want, 1e-6)      # dWhh: the script rounds to float32 every step
    assert got[2].dtype == np.float32
    for k in (0, 1, 3, 4, 5, 6):          # float64 like the script's
        assert relative_error(np.asarray(got[k]), np.asarray(want[k])) < 1e-10


def test_lossFun_negative_indices_count_from_the_end():
    (Wxh, Whh, Why, bh, by), hprev = _model(V=9, H=6, scale=0.3)
    inputs, targets = [3, -1, 0, -9], [-2, 4, 8, 0]
    got = minchar.lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    _assert_results(got, o_lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by), 1e-10)
    _assert_results(got, o_lossFun([3, 8, 0, 0], [7, 4, 8, 0], hprev, Wxh, Whh, Why, bh, by),
                    1e-10)


def test_lossFun_empty_chunk_returns_zeros_and_hprev():
    # The script itself fails here (np.zeros_like(hs[0]): no step 0, a KeyError); compat
    # returns what its loops would leave: loss 0, zero gradients, hprev (a copy).
    (Wxh, Whh, Why, bh, by), hprev = _model(V=5, H=4, dtype=np.float32)
    with pytest.raises(KeyError):
        o_lossFun([], [], hprev, Wxh, Whh, Why, bh, by)
    got = minchar.lossFun([], [], hprev, Wxh, Whh, Why, bh, by)
    want = (0, *(np.zeros_like(a) for a in (Wxh, Whh, Why, bh, by)), hprev)
    _assert_results(got, want, 0)
    assert got[0] == 0 and got[-1] is not hprev


def test_lossFun_gradients_match_finite_differences():
    (Wxh, Whh, Why, bh, by), hprev = _model(V=6, H=5, scale=0.5, seed=3)
    inputs, targets = _chunk(6, 8, seed=4)
    params = [Wxh, Whh, Why, bh, by]
    got = minchar.lossFun(inputs, targets, hprev, *params)
    assert all(np.max(np.abs(d)) < 5 for d in got[1:6]), "clipping would spoil the check"
    eps = 1e-5
    for k, (name, arr) in enumerate(zip(("Wxh", "Whh", "Why", "bh", "by"), params)):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            plus = minchar.lossFun(inputs, targets, hprev, *params)[0]
            arr[idx] = old - eps
            minus = minchar.lossFun(inputs, targets, hprev, *params)[0]
            arr[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        assert np.max(np.abs(numeric)) > 1e-3
        err = relative_error(got[1 + k], numeric)
        assert err < 1e-7, f"d{name}: relative error {err:.2e}"


def test_sample_draws_what_the_script_draws():
    (Wxh, Whh, Why, bh, by), hprev = _model(V=11, H=8, scale=0.5)
    np.random.seed(123)
    want = o_sample(hprev, 3, 40, Wxh, Whh, Why, bh, by)
    np.random.seed(123)
    got = minchar.sample(hprev, 3, 40, Wxh, Whh, Why, bh, by)
    assert got == want and all(isinstance(i, np.integer) for i in got)
    np.random.seed(7)
    want = o_sample(hprev, 10, 25, Wxh, Whh, Why, bh, by)
    np.random.seed(7)
    assert minchar.sample(hprev, -1, 25, Wxh, Whh, Why, bh, by) == want   # x[-1] = 1
    (W32, *rest), h32 = _model(V=11, H=8, scale=0.5, dtype=np.float32)
    np.random.seed(8)
    want = o_sample(h32, 2, 30, W32, *rest)     # float64 products, as the script's
    np.random.seed(8)
    assert minchar.sample(h32, 2, 30, W32, *rest) == want
    a = minchar.sample(hprev, 3, 40, Wxh, Whh, Why, bh, by, rng=np.random.default_rng(5))
    b = minchar.sample(hprev, 3, 40, Wxh, Whh, Why, bh, by, rng=np.random.default_rng(5))
    assert a == b and len(a) == 40 and all(0 <= i < 11 for i in a)
    assert minchar.sample(hprev, 3, 0, Wxh, Whh, Why, bh, by) == []
    assert minchar.sample(hprev, 3, -2, Wxh, Whh, Why, bh, by) == []   # range(-2)


def test_bad_arguments_are_named():
    (Wxh, Whh, Why, bh, by), hprev = _model(V=5, H=4)
    ok = ([0, 1], [1, 2], hprev, Wxh, Whh, Why, bh, by)

    def call(**change):
        names = ("inputs", "targets", "hprev", "Wxh", "Whh", "Why", "bh", "by")
        args = dict(zip(names, ok))
        args.update(change)
        return lambda: minchar.lossFun(*(args[n] for n in names))

    raises_naming(ValueError, [r"Whh must have shape \(H, H\)"], call(Whh=np.ones((5, 5))))
    raises_naming(ValueError, [r"Why must have shape \(V, H\)"], call(Why=np.ones((4, 5))))
    raises_naming(ValueError, [r"bh must have shape \(H, 1\)"], call(bh=np.ones((1, 4))))
    raises_naming(ValueError, [r"by must have shape \(V, 1\)"], call(by=np.ones((4, 1))))
    raises_naming(ValueError, [r"hprev must have shape \(H, 1\)"], call(hprev=np.ones((1, 4))))
    raises_naming(TypeError, [r"Wxh must hold floats", "int64"], call(Wxh=np.ones((4, 5), int)))
    raises_naming(TypeError, [r"Whh must hold real numbers", "complex"],
                  call(Whh=np.ones((4, 4), complex)))
    raises_naming(TypeError, [r"promote to float128|promote to longdouble"],
                  call(Why=np.ones((5, 4), np.longdouble)))
    raises_naming(ValueError, [r"inputs must lie in \[-V, V\)"], call(inputs=[0, 5]))
    raises_naming(ValueError, [r"inputs must lie in \[-V, V\)"], call(inputs=[-6, 0]))
    raises_naming(TypeError, [r"targets must hold integer indices"], call(targets=[0.0, 1.0]))
    raises_naming(TypeError, [r"inputs must hold integer indices", "bool"],
                  call(inputs=[True, False]))
    raises_naming(ValueError, [r"same length"], call(targets=[1]))
    raises_naming(ValueError, [r"seed_ix must lie in \[-V, V\)"],
                  lambda: minchar.sample(hprev, 5, 3, Wxh, Whh, Why, bh, by))
    raises_naming(TypeError, [r"seed_ix must hold integer indices"],
                  lambda: minchar.sample(hprev, 1.0, 3, Wxh, Whh, Why, bh, by))
    raises_naming(TypeError, [r"n must be an int"],
                  lambda: minchar.sample(hprev, 0, 2.0, Wxh, Whh, Why, bh, by))
    raises_naming(TypeError, [r"rng must be a numpy Generator"],
                  lambda: minchar.sample(hprev, 0, 2, Wxh, Whh, Why, bh, by, rng=3))


def test_lossFun_follows_the_backend_switch():
    import fastbptt
    (Wxh, Whh, Why, bh, by), hprev = _model(V=7, H=5, scale=0.3)
    inputs, targets = _chunk(7, 6)
    with fastbptt.use_backend("reference"):
        got = minchar.lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    want = o_lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    _assert_results(got, want, 1e-12)
