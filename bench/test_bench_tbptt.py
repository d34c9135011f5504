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
from functools import partial

import numpy as np
import pytest

from fastbptt import LSTM, TruncatedBPTT, bench
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
    layer, x, R = _problem()
    cases = [(how, k1, k2) for k1, k2 in [(25, 25), (25, 50), (10, 50)]
             for how in ("tbptt", "by_hand")]
    epochs = {"tbptt": _tbptt_epoch, "by_hand": _by_hand_epoch}
    runs = {(how, k1, k2): partial(epochs[how], layer, x, R, k1, k2) for how, k1, k2 in cases}
    print("\n".join(bench.machine_lines()))
    with bench.thread_limit(1):
        timings = bench.time_interleaved(runs, rounds)
    for (how, k1, k2), timing in timings.items():
        print(f"k1={k1:3d} k2={k2:3d} {how:8s} median {1e3 * timing.median:8.1f}"
              f" ms  min {1e3 * min(timing.times):8.1f} ms")


if __name__ == "__main__":
    interleaved()
