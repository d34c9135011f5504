"""What every test shares: the test process's C allocator is left as it is.

`fastbptt bench` puts it into a long-running process's state before timing anything
(fastbptt.bench.steady_allocator: glibc's heap trimming off for the rest of the process).
The tests that run the command in this process (test_cli.py, test_bench.py, ...) would
carry that into every later test, which would then keep memory that a test of page faults
or resident memory must see given back. So here the command finds a stand-in that records
its calls (allocator_calls); the real function is tested in a subprocess (test_bench.py).
"""
import pytest

# What the stand-in returns: the header's Allocator line in the tests.
ALLOCATOR_LEFT_ALONE = "left as it is (the test process)"


@pytest.fixture(autouse=True)
def allocator_calls(monkeypatch):
    """The calls of fastbptt.bench.steady_allocator during the test, which does nothing."""
    calls = []

    def stand_in():
        calls.append(True)
        return ALLOCATOR_LEFT_ALONE

    monkeypatch.setattr("fastbptt.bench.steady_allocator", stand_in)
    return calls
