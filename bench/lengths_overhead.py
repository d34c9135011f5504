"""Per-call time of LSTM forward+backward with and without `lengths`, for comparing two
builds (the NaN-padding fix copies x with its padding zeroed when lengths cut a sequence
short; the no-lengths path must cost nothing extra). One BLAS thread, medians after a
warm-up (fastbptt.bench.time_call).

    PYTHONPATH=<old tree>/src python bench/lengths_overhead.py
    PYTHONPATH=<new tree>/src python bench/lengths_overhead.py     # alternate, repeat

Both trees need the fastbptt.bench package (its harness times the calls); for a tree
from before it, run this file as it was in that tree.
"""
import numpy as np

import fastbptt
from fastbptt import bench


def main():
    print("\n".join(bench.machine_lines()))
    rows = []
    for T, B, I, H, n in [(100, 1, 32, 32, 400), (100, 32, 256, 256, 15)]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        W_ih = (rng.standard_normal((4 * H, I)) / np.sqrt(I)).astype(np.float32)
        W_hh = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(np.float32)
        dh = rng.standard_normal((T, B, H)).astype(np.float32)
        cut = np.r_[T, rng.integers(1, T, B - 1)] if B > 1 else np.array([T // 2])
        for lengths in (None, cut):
            def call(x=x, W_ih=W_ih, W_hh=W_hh, dh=dh, lengths=lengths):
                h, cache = fastbptt.lstm_forward(x, None, None, W_ih, W_hh, lengths=lengths)
                fastbptt.lstm_backward(dh, cache)
            with bench.thread_limit(1):
                seconds = bench.time_call(call, n).median
            rows.append(f"{T},{B},{I},{H} lengths={'no' if lengths is None else 'yes'} "
                        f"{seconds * 1e3:.3f} ms")
    print(" | ".join(rows))


if __name__ == "__main__":
    main()
