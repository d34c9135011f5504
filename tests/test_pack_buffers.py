"""The packed weights' buffers are kept between calls (_kernels/step_alloc.h).

A packed W_hh past malloc's mmap threshold was fresh pages on every call (each faulted in
and zeroed), which at B = 1 and a few dozen steps cost more than the packed product saved
(bench/RESULTS.md, "The packed product at B = 1-4"). Counted in a fresh interpreter, where
glibc's threshold has not yet been moved up by earlier frees of such buffers.
"""
import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

_PROBE = textwrap.dedent("""
    import resource
    import fastbptt
    from fastbptt.bench.problems import make_problem
    from fastbptt.cells.spec import PACKED_MIN_STEPS, step_form
    from fastbptt.runtime.packing import packer

    # the float64 LSTM at H = 100: each packed W_hh (4H x H) is over 300 KiB
    T, B, H = PACKED_MIN_STEPS, 1, 100
    assert step_form("lstm", B, H, "float64", packer(), T) == "packed", packer()
    p = make_problem("lstm", T, B, H, H, "float64")

    def call():
        h, cache = fastbptt.lstm_forward(p.x, *p.states, p.W_ih, p.W_hh, p.b_ih, p.b_hh)
        fastbptt.lstm_backward(p.dh, cache)
        return cache.form

    assert call() == "packed"
    call()
    calls = 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        call()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls)
""")


def test_a_packed_call_faults_in_no_fresh_pages_for_its_weights():
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0 and "AssertionError" in result.stderr and "mkl" in result.stderr:
        pytest.skip("MKL is this process's packer: one row does not pack")
    assert result.returncode == 0, result.stderr
    faults = float(result.stdout.split()[-1])
    # the two packed copies (forward W_hh^T, backward W_hh) are 4 KiB pages by the
    # hundred, faulted in once per call each when they are fresh memory
    pages = 2 * 4 * 100 * 100 * 8 // 4096
    assert faults < pages / 4, f"{faults} minor page faults per forward+backward call"
