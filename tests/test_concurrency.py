"""Thread safety and determinism of the compiled functions:

- the kernels release the GIL: another Python thread keeps running while one is inside
  a long compiled call;
- several threads calling at once (every registered function, different problems) get
  exactly, bit for bit, the results of serial calls;
- (elsewhere) the same call twice gives bit-identical results: every registered function
  in test_properties.py, and every cell's forward and backward at a fixed BLAS thread
  count (1 and 2) in test_cell_contract.py::test_fixed_thread_count_is_bit_identical.
"""
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastbptt
from _registry import REGISTRY, Case, flatten


def _long_rnn_problem():
    rng = np.random.default_rng(0)
    T, B, I, H = 3000, 8, 64, 64
    return (rng.standard_normal((T, B, I)).astype(np.float32), None,
            (rng.standard_normal((H, I)) / 8).astype(np.float32),
            (rng.standard_normal((H, H)) / 16).astype(np.float32))


def test_kernels_release_the_gil():
    """While a worker thread runs a long forward + backward, the main thread counts:
    if the kernel held the GIL the main thread would stall for the whole kernel (no
    Python thread switch happens inside C code). The longest pause the main thread sees
    must be a small part of the worker's time."""
    args = _long_rnn_problem()
    h, cache = fastbptt.rnn_forward(*args)      # warm-up (BLAS threads, page faults)
    fastbptt.rnn_backward(h, cache)
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        kernel_time = []

        def work():
            t0 = time.perf_counter()
            for _ in range(3):
                hh, c = fastbptt.rnn_forward(*args)
                fastbptt.rnn_backward(hh, c)
            kernel_time.append(time.perf_counter() - t0)

        worker = threading.Thread(target=work)
        gaps, last = [], time.perf_counter()
        worker.start()
        while worker.is_alive():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        worker.join()
    finally:
        sys.setswitchinterval(old)
    total = kernel_time[0]
    # 3 forward + 3 backward calls, backward about twice forward: holding the GIL through
    # each would leave a pause of a whole backward call, about total / 4.5 (a sort
    # holding the GIL, measured the same way, left a pause of 1/3 of its 3 runs). Here,
    # loaded machine: longest pause 28 ms of 715 ms.
    print(f"kernel time {total:.3f} s, longest main-thread pause {max(gaps):.4f} s")
    assert max(gaps) < total / 6, f"longest main-thread pause {max(gaps):.4f} s of {total:.3f} s"


CASES = [Case(T=12, B=b, I=5, H=7, dtype=dt, batch_first=bf, lengths=ln, seed=s)
         for s, (b, dt, bf, ln) in enumerate([(1, np.float32, False, False),
                                              (3, np.float64, True, True),
                                              (8, np.float32, False, True),
                                              (5, np.float64, False, False)])]


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
def test_concurrent_calls_equal_serial_calls_bit_for_bit(entry):
    calls = [entry.build(case, "compiled") for case in CASES]
    serial = [flatten(call()) for call in calls]
    work = calls * 6   # 24 calls, 4 threads: every problem runs beside the others
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda call: flatten(call()), work))
    for i, got in enumerate(results):
        expected = serial[i % len(calls)]
        assert len(got) == len(expected)
        for a, e in zip(got, expected):
            np.testing.assert_array_equal(a, e)


def test_layers_in_threads_equal_serial_use():
    """Layer objects keep the last forward's tape (self.tape), like torch modules
    keep autograd state: one object is not meant for concurrent forward/backward pairs.
    The functional API holds no state; check that two layers in two threads agree with
    serial use."""
    x = np.random.default_rng(1).standard_normal((6, 3, 4)).astype(np.float32)
    layers = [fastbptt.LSTM(4, 5, num_layers=2, bidirectional=True, seed=2) for _ in range(2)]
    serial = layers[0].forward(x)[0]

    def run(layer):
        return [layer.forward(x)[0] for _ in range(20)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        outs = list(pool.map(run, layers))
    for out in outs:
        for o in out:
            np.testing.assert_array_equal(o, serial)
