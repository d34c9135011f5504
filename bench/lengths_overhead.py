"""Per-call time of LSTM forward+backward with and without `lengths`, for comparing two
builds (the NaN-padding fix copies x with its padding zeroed when lengths cut a sequence
short; the no-lengths path must cost nothing extra). One BLAS thread, medians.

    PYTHONPATH=<old tree>/src python bench/lengths_overhead.py
    PYTHONPATH=<new tree>/src python bench/lengths_overhead.py     # alternate, repeat
"""
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastbptt


def median_seconds(f, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    threadpool_limits(1)
    rows = []
    for T, B, I, H, n in [(100, 1, 32, 32, 400), (100, 32, 256, 256, 15)]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        W_ih = (rng.standard_normal((4 * H, I)) / np.sqrt(I)).astype(np.float32)
        W_hh = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(np.float32)
        dh = rng.standard_normal((T, B, H)).astype(np.float32)
        cut = np.r_[T, rng.integers(1, T, B - 1)] if B > 1 else np.array([T // 2])
        for lengths in (None, cut):
            def call():
                h, cache = fastbptt.lstm_forward(x, None, None, W_ih, W_hh, lengths=lengths)
                fastbptt.lstm_backward(dh, cache)
            call()
            rows.append(f"{T},{B},{I},{H} lengths={'no' if lengths is None else 'yes'} "
                        f"{median_seconds(call, n) * 1e3:.3f} ms")
    print(" | ".join(rows))


if __name__ == "__main__":
    main()
