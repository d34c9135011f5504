"""fastbptt.show_config() and fastbptt.threads(): what they report and set."""
import os
import platform

import numpy as np
import pytest
import scipy
from threadpoolctl import threadpool_info

import fastbptt
from fastbptt.runtime.config import cpu_flags


def scipy_blas_threads():
    return [info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas" and "scipy" in os.path.dirname(info["filepath"])]


def test_show_config_prints_and_returns(capsys):
    info = fastbptt.show_config()
    out = capsys.readouterr().out
    assert info["fastbptt"] == fastbptt.__version__
    assert info["numpy"] == np.__version__ and info["scipy"] == scipy.__version__
    assert set(info["dtype_paths"]) == {"float32", "float64"}
    assert info["blas"], "scipy's cython_blas loads a BLAS threadpoolctl can see"
    assert any(lib["used_by"].startswith("scipy") for lib in info["blas"])
    for lib in info["blas"]:
        assert lib["num_threads"] >= 1 and lib["library"] in out
    assert f"fastbptt {fastbptt.__version__}" in out and "OPENBLAS_CORETYPE" in out
    assert info["openblas_coretype"] == os.environ.get("OPENBLAS_CORETYPE")
    packing = info["per_step_packing"]
    assert packing["packer"] in ("own", "mkl") and "per-step products on packed W_hh" in out
    assert (packing["library"] is not None) == (packing["packer"] == "mkl")
    assert packing["own_instance"] in out or packing["packer"] == "mkl"
    # beside MKL, the own kernel's share is said, as the kernels apply it
    assert packing["packer"] == "own" or f"at 5-{packing['own_rows']} against" in out


def test_cpu_flags_from_proc_cpuinfo():
    flags = cpu_flags()
    if os.path.exists("/proc/cpuinfo") and platform.machine() == "x86_64":
        assert {"avx2", "avx512f"} <= set(flags)
        assert all(isinstance(on, bool) for on in flags.values())


def test_threads_sets_and_restores():
    before = scipy_blas_threads()
    with fastbptt.threads(1) as n:
        assert n == 1
        assert scipy_blas_threads() == [1] * len(before)
    assert scipy_blas_threads() == before
    with fastbptt.threads("all") as n:
        assert n == os.cpu_count()


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        ("2", TypeError), (True, TypeError)])
def test_threads_bad_input(bad, error):
    with pytest.raises(error, match="threads"):
        with fastbptt.threads(bad):
            pass


def test_threads_results_do_not_change():
    rng = np.random.default_rng(0)
    T, B, I, H = 6, 3, 4, 5
    x = rng.standard_normal((T, B, I))
    W_ih, W_hh = rng.standard_normal((H, I)) * 0.3, rng.standard_normal((H, H)) * 0.3
    h, cache = fastbptt.rnn_forward(x, None, W_ih, W_hh)
    with fastbptt.threads(1):
        h1, cache1 = fastbptt.rnn_forward(x, None, W_ih, W_hh)
    np.testing.assert_allclose(h1, h, rtol=1e-12)
