"""Resident memory stays flat over repeated forward + backward calls (a modest count
here; tools/leakcheck.py runs the issue's 10,000 calls per function)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
from leakcheck import rss_growth  # noqa: E402

from _registry import LOSSES, REGISTRY  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="reads resident memory from /proc (Linux)")

BACKWARD = [e for e in REGISTRY if e.name in ("rnn_backward", "lstm_backward",
                                              "gru_backward", "projected lstm_backward",
                                              *LOSSES)]


@pytest.mark.parametrize("entry", BACKWARD, ids=lambda e: e.name)
def test_rss_is_flat_over_300_forward_backward_calls(entry):
    # one leaked (T+1, B, H) float64 buffer per call would be 10 MB over 300 calls
    before, after = rss_growth(entry, calls=300, warmup=50)
    assert after - before < 4.0, f"RSS grew {after - before:.2f} MB ({before:.1f} -> {after:.1f})"
