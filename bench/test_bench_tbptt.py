"""pytest-benchmark suite of truncated BPTT: what TruncatedBPTT costs over calling the
layer by hand on the same windows, and what splitting each window's forward (to get the
next window's state exactly) saves against forwarding the overlap a second time.

One epoch over an LSTM stream, T=200, B=32, I=64, H=128, float32, a linear loss
(d_output fixed), compiled backend:
- "tbptt": TruncatedBPTT(layer, k1, k2).run(...) consumed;
- "by_hand": the same windows as direct layer.forward/backward calls, the state taken
  from one more forward over [start, next_start) (the obvious exact way without a split).
For k1 = k2 there is no overlap and "by_hand" is the floor: the difference is
TruncatedBPTT's bookkeeping. Run: `pytest bench/test_bench_tbptt.py --benchmark-only`.
"""
import numpy as np
import pytest

from fastbptt import LSTM, TruncatedBPTT
from fastbptt.training.tbptt import window_schedule

T, B, I, H = 200, 32, 64, 128


def _problem():
    rng = np.random.default_rng(0)
    layer = LSTM(I, H, dtype=np.float32, seed=0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    R = rng.standard_normal((T, B, H)).astype(np.float32)
    return layer, x, R


def _tbptt_epoch(layer, x, R, k1, k2):
    def loss_fn(output, lo, hi):
        return 0.0, R[lo:hi]
    tb = TruncatedBPTT(layer, k1, k2)
    for _ in tb.run(x, loss_fn):
        pass


def _by_hand_epoch(layer, x, R, k1, k2):
    state = None
    for start, loss_start, stop, next_start in window_schedule(T, k1, k2):
        if next_start not in (start, stop):
            # the state at next_start: an extra forward over the overlap's beginning
            _, next_state = layer.forward(x[start:next_start], state)
        out, final = layer.forward(x[start:stop], state)
        d = np.zeros_like(out)
        d[loss_start - start:] = R[loss_start:stop]
        layer.backward(d)
        state = final if next_start == stop else (state if next_start == start
                                                  else next_state)


@pytest.mark.parametrize("k1, k2", [(25, 25), (25, 50), (10, 50)],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("how", ["tbptt", "by_hand"])
def test_tbptt_epoch(benchmark, how, k1, k2):
    layer, x, R = _problem()
    run = _tbptt_epoch if how == "tbptt" else _by_hand_epoch
    benchmark.group = f"lstm tbptt T,B,I,H={T},{B},{I},{H} float32 k1={k1} k2={k2}"
    benchmark.pedantic(run, args=(layer, x, R, k1, k2), rounds=15, warmup_rounds=1)


def interleaved(rounds=21):
    """Medians (ms) of each (how, k1, k2), the variants timed in turn within every round,
    so a loaded machine's slow spells hit them all alike: `python bench/test_bench_tbptt.py`.
    """
    import time

    from threadpoolctl import threadpool_limits

    layer, x, R = _problem()
    cases = [(how, k1, k2) for k1, k2 in [(25, 25), (25, 50), (10, 50)]
             for how in ("tbptt", "by_hand")]
    times = {case: [] for case in cases}
    with threadpool_limits(limits=1):
        for case in cases:   # warm-up
            (_tbptt_epoch if case[0] == "tbptt" else _by_hand_epoch)(layer, x, R, *case[1:])
        for _ in range(rounds):
            for case in cases:
                run = _tbptt_epoch if case[0] == "tbptt" else _by_hand_epoch
                t0 = time.perf_counter()
                run(layer, x, R, *case[1:])
                times[case].append(time.perf_counter() - t0)
    for how, k1, k2 in cases:
        print(f"k1={k1:3d} k2={k2:3d} {how:8s} median {1e3 * np.median(times[how, k1, k2]):8.1f}"
              f" ms  min {1e3 * np.min(times[how, k1, k2]):8.1f} ms")


if __name__ == "__main__":
    interleaved()
