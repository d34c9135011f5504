"""The packed form of the per-step product (packed_gemm.h, step_packing.pyx).

The micro-kernel against NumPy in each of its instruction-set instances (AVX-512, AVX2,
portable: the tests lower the instance to reach them all on one machine); every cell's
forward and backward with the packed form against the same call without it (the
OpenBLAS path), with each packer this machine has, to rounding; float32 stays float32; a
float64 finite-difference check through the packed path; and the packer's switches.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbptt
from fastbptt._kernels import blas, packed_product, step_packing
from fastbptt.bench.peers import expected_result
from fastbptt.bench.problems import make_problem
from fastbptt.cells import driver
from fastbptt.cells.spec import SPECS, step_form
from fastbptt.runtime import packing

PACKERS = ["own"] + (["mkl"] if packing.packer() == "mkl" else [])
LEVELS = list(range(packed_product.cpu_level() + 1))
TOL = {"float32": 2e-5, "float64": 1e-12}


@pytest.fixture
def level():
    """Restores the micro-kernel's instance after a test that lowers it."""
    before = packed_product.level()
    yield
    packed_product.set_level(before)


@pytest.fixture(params=PACKERS)
def packer(request):
    before = packing.set_packer(request.param)
    yield request.param
    packing.set_packer(before)


@pytest.mark.parametrize("lvl", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, K, N", [(1, 1, 1), (5, 7, 33), (12, 16, 32), (13, 40, 31),
                                     (25, 3, 100), (64, 130, 96), (13, 300, 47),
                                     (4, 256, 64), (3, 0, 5), (2, 50, 200),
                                     (3, 20, 130), (5, 9, 96)])
def test_micro_kernel_matches_numpy(lvl, dtype, M, K, N, level):
    # shapes around the register blocks (12 or 3 or 1 rows, 32 float / 16 double columns
    # a panel) and their edges, the few-rows path (1-5 rows over 2 or 4 full panels a
    # pass, then the rest one at a time), K = 0 (C = beta C) and panels longer than the prefetch
    # distance (its requests run past the panels' end)
    assert packed_product.set_level(lvl) == lvl
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((N, K)).astype(dtype)       # the forward's W_hh (GH x H)
    C = rng.standard_normal((M, N)).astype(dtype)
    want = C.astype(np.float64) + A.astype(np.float64) @ W.T.astype(np.float64)
    got = packed_product.product_py(A, W, True, True, C.copy())
    tol = TOL[np.dtype(dtype).name] * max(1.0, np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * 4)
    W2 = rng.standard_normal((K, N)).astype(dtype)      # the backward's W_hh (GH x H)
    got = packed_product.product_py(A, W2, False, False, np.full((M, N), np.nan, dtype))
    want = A.astype(np.float64) @ W2.astype(np.float64)   # beta 0: NaN in C is not read
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * 4)
    assert got.dtype == dtype


@pytest.mark.parametrize("lvl", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [False, True])
def test_micro_kernel_rows_do_not_depend_on_the_row_blocks(lvl, dtype, beta, level):
    # each element of C is one sum over k in order (packed_gemm.h), so a row
    # comes out bit-identical whether it runs in a block of 12 or 3 rows, alone or in the
    # few-rows path (the packed step at B = 1-4 against the same rows in a larger batch);
    # N = 147 is four full float32 panels (nine float64) and a partial one
    assert packed_product.set_level(lvl) == lvl
    rng = np.random.default_rng(lvl)
    M, K, N = 17, 300, 147
    A = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((N, K)).astype(dtype)
    C = rng.standard_normal((M, N)).astype(dtype)
    whole = packed_product.product_py(A, W, True, beta, C.copy())
    for i in range(M):
        row = packed_product.product_py(A[i:i + 1], W, True, beta, C[i:i + 1].copy())
        np.testing.assert_array_equal(row[0], whole[i])
    for i0 in range(0, M - 5, 5):
        rows = packed_product.product_py(A[i0:i0 + 5], W, True, beta, C[i0:i0 + 5].copy())
        np.testing.assert_array_equal(rows, whole[i0:i0 + 5])


def test_micro_kernel_rejects_shapes_that_do_not_agree():
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="shapes do not agree"):
        packed_product.product_py(A, np.ones((5, 3)), True, False, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="shapes do not agree"):
        packed_product.product_py(A, np.ones((4, 5)), False, False, np.zeros((3, 6)))


def test_set_level_is_clamped_to_the_cpu(level):
    assert packed_product.set_level(99) == packed_product.cpu_level()
    assert packed_product.set_level(-3) == 0


# T, B, I, H: the packed form with either packer, around the register blocks (12 rows
# AVX-512) and the panels (32 float, 16 double columns); (2, 20, 3, 650): weights of 1.7
# (the RNN's in float32) to 13.5 MiB, on either side of the lower bound of the own
# kernel's share beside MKL (step_packing.step_packer)
SHAPES = [(4, 5, 3, 256), (3, 7, 2, 260), (2, 13, 3, 40), (2, 25, 2, 33), (2, 20, 3, 650)]


def _unpacked(monkeypatch):
    # the wrappers ask the process's packer; without one, step_form never packs
    monkeypatch.setattr(driver, "packer", lambda: None)


@pytest.mark.parametrize("cell", list(SPECS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_packed_cells_match_the_openblas_path(cell, dtype, shape, packer, monkeypatch):
    T, B, I, H = shape
    assert step_form(cell, B, H, dtype, packer) == "packed"
    problem = make_problem(cell, T, B, I, H, dtype)
    blas.start_call_log()
    packed = expected_result(cell, problem)
    with monkeypatch.context() as m:
        _unpacked(m)
        calls = [c for c in blas.stop_call_log() if c[0] == "packed"]
        assert len(calls) == 2 * T
        # every product by the packer packer_for names for this shape
        want = step_packing.packer_for(B, SPECS[cell].gates * H, H, np.dtype(dtype).itemsize)
        assert {c[1] for c in calls} == {want}
        blas.start_call_log()
        plain = expected_result(cell, problem)
        assert not any(c[0] == "packed" for c in blas.stop_call_log())
    for key, want in plain.items():
        got = packed[key]
        assert got.dtype == want.dtype == np.dtype(dtype), key
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale, err_msg=key)


@pytest.mark.parametrize("cell", list(SPECS))
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_cells_with_lengths_and_batch_first(cell, batch_first, packer, monkeypatch):
    T, B, I, H = 5, 6, 3, 256
    rng = np.random.default_rng(7)
    spec = SPECS[cell]
    GH = spec.gates * H
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    W_ih = rng.uniform(-0.1, 0.1, (GH, I))
    W_hh = rng.uniform(-0.1, 0.1, (GH, H))
    states = [rng.standard_normal((B, H)) for _ in spec.states]
    lengths = np.array([5, 1, 3, 5, 2, 4])
    dh = rng.standard_normal(x.shape[:2] + (H,))
    forward = getattr(fastbptt, spec.forward_name)
    backward = getattr(fastbptt, spec.backward_name)

    def run():
        h, cache = forward(x, *states, W_ih, W_hh, batch_first=batch_first, lengths=lengths)
        return h, backward(dh, cache)

    h, grads = run()
    with monkeypatch.context() as m:
        _unpacked(m)
        h0, grads0 = run()
    np.testing.assert_allclose(h, h0, rtol=0, atol=1e-12)
    for name, want in grads0._asdict().items():
        if want is not None:
            np.testing.assert_allclose(getattr(grads, name), want, rtol=0, atol=1e-11,
                                       err_msg=name)


@pytest.mark.parametrize("cell", list(SPECS))
def test_packed_float64_finite_differences(cell, packer):
    # L = sum(h * dh): dL/dW_hh along a random direction D against the central
    # difference (L(W + eps D) - L(W - eps D)) / (2 eps), every product packed
    T, B, I, H = 3, 5, 2, 256
    rng = np.random.default_rng(11)
    spec = SPECS[cell]
    GH = spec.gates * H
    x = rng.standard_normal((T, B, I))
    W_ih = rng.uniform(-0.1, 0.1, (GH, I))
    W_hh = rng.uniform(-0.1, 0.1, (GH, H))
    states = [rng.standard_normal((B, H)) for _ in spec.states]
    dh = rng.standard_normal((T, B, H))
    forward = getattr(fastbptt, spec.forward_name)
    backward = getattr(fastbptt, spec.backward_name)
    assert step_form(cell, B, H, "float64", packer) == "packed"

    def loss(W):
        return float(np.sum(forward(x, *states, W_ih, W)[0] * dh))

    _, cache = forward(x, *states, W_ih, W_hh)
    dW_hh = backward(dh, cache).dW_hh
    D = rng.standard_normal(W_hh.shape)
    eps = 1e-6
    numeric = (loss(W_hh + eps * D) - loss(W_hh - eps * D)) / (2 * eps)
    analytic = float(np.sum(dW_hh * D))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic))


def test_the_own_kernel_keeps_its_share_beside_mkl(packer):
    """packer_for, the kernels' choice: with the own packer always the own kernel; with
    MKL's, the own kernel at B <= OWN_ONLY_ROWS and at B <= 24 rows against weights of
    more than 2 MiB up to 16 MiB (where it was measured faster), MKL everywhere else."""
    rows, low, high = step_packing.OWN_BESIDE_MKL
    assert (rows, low, high) == (24, 2 << 20, 16 << 20)
    mkl = "mkl" if packer == "mkl" else "own"
    H = 512                             # GH x H float32 weights: GH * 2 KiB
    at = {GH: GH * H * 4 for GH in (1024, 1025, 8192, 8193)}
    assert at == {1024: low, 1025: low + 2048, 8192: high, 8193: high + 2048}
    cases = [((4, 8193, H, 4), "own"), ((5, 1024, H, 4), mkl), ((5, 1025, H, 4), "own"),
             ((24, 8192, H, 4), "own"), ((25, 8192, H, 4), mkl), ((24, 8193, H, 4), mkl),
             ((20, 2600, 650, 4), "own"), ((20, 2600, 650, 8), "own"),
             ((20, 1024, 256, 4), mkl), ((32, 2600, 650, 4), mkl),
             ((20, 4096, 1024, 8), mkl), ((64, 4096, 1024, 4), mkl)]
    for args, want in cases:
        assert step_packing.packer_for(*args) == want, args
    for bad in ((0, 8, 8, 4), (5, 0, 8, 4), (5, 8, 0, 8), (5, 8, 8, 2)):
        with pytest.raises(ValueError, match="itemsize 4 or 8"):
            step_packing.packer_for(*bad)


def test_set_packer_names_its_argument():
    with pytest.raises(ValueError, match="packer must be 'mkl' or 'own', got 'blas'"):
        packing.set_packer("blas")
    assert packing.packer() in ("own", "mkl")


def test_fastbptt_mkl_0_keeps_mkl_out():
    code = ("from fastbptt.runtime import packing; print(packing.packer())")
    env = dict(os.environ, FASTBPTT_MKL="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "own"


@pytest.mark.skipif("mkl" not in PACKERS, reason="the mkl package is not installed here")
def test_mkl_is_the_packer_when_installed():
    assert packing.mkl_library() is not None
    code = "from fastbptt.runtime import packing; print(packing.packer())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "FASTBPTT_MKL"},
                         timeout=120)
    assert out.stdout.strip() == "mkl", out.stderr


def test_the_gemms_follow_the_packer():
    """MKL the packer: every other product of the kernels on MKL's GEMM too; the own
    packer: on scipy's BLAS. Set before any kernel runs (fastbptt._kernels asks the
    packer at import), so that a process never mixes the two."""
    from fastbptt._kernels import blas

    code = "import fastbptt._kernels.blas as b; print(b.gemm_library())"
    for value, want in (("0", "scipy"), ("1", "mkl" if "mkl" in PACKERS else "scipy")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, FASTBPTT_MKL=value), timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == want
    before = packing.packer()
    try:
        for name in PACKERS:
            packing.set_packer(name)
            assert blas.gemm_library() == ("mkl" if name == "mkl" else "scipy")
            # the shim's answer is NumPy's whichever library runs it
            rng = np.random.default_rng(3)
            A, B = rng.standard_normal((37, 19)), rng.standard_normal((23, 19))
            C = blas.gemm_py(False, True, 1.0, A, B, 0.0, np.empty((37, 23)))
            np.testing.assert_allclose(C, A @ B.T, rtol=1e-12, atol=1e-12)
    finally:
        packing.set_packer(before)


def test_few_rows_pack_with_the_own_kernel_whatever_the_packer():
    """At B <= GEMV_ROWS step_form packs with either packer, because the kernels then pack
    with the own kernel (the one measured there): the two bounds must be the same."""
    from fastbptt._kernels import step_packing
    from fastbptt.cells.spec import GEMV_ROWS

    assert step_packing.OWN_ONLY_ROWS_PY == GEMV_ROWS
    assert step_form("lstm", GEMV_ROWS, 8, np.float32, "mkl", 1000) == "packed"
