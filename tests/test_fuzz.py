"""A short run of tools/fuzz.py (random valid and junk calls to every registered
function, in a child process so a crash is caught); the 10,000-call run and its result
are in bench/RESULTS.md."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import fuzz  # noqa: E402


def test_fuzz_500_calls_no_crash_no_undocumented_exception():
    summary = fuzz.run(calls=500, seed=20261122)
    assert not summary["crashed"], summary["crashed"]
    assert not summary["failures"], "\n\n".join(summary["failures"])
    assert summary["ok"] + summary["rejected"] == 500
    assert summary["ok"] > 50 and summary["rejected"] > 50   # both kinds of call ran
