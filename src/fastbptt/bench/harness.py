"""The timer behind every figure of the benchmark: warm-up, timed calls, their median, the
repeat count and the thread limits. Nothing here knows about cells or backends: a timed
unit is any function of no arguments, so a new peer or probe needs no change here.

A figure is the median of timed calls after one untimed warm-up call, rather than the
minimum or the mean: it describes a typical call and ignores the occasional preemption on
a small shared machine. Calls to be compared are timed interleaved (time_interleaved), so
that a burst of load from other processes spreads over all of them instead of one.
"""
import os
import statistics
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from time import perf_counter
from typing import NamedTuple, Optional

from threadpoolctl import threadpool_limits

# `fastbptt bench --threads` without the option: one row at one thread, one at all cores.
DEFAULT_THREADS = "1,all"

# Seconds of timed calls per measurement when the repeat count is chosen adaptively.
REPEAT_BUDGET = 1.0
MIN_REPEAT = 3      # the largest shapes: a median still discards one outlier
MAX_REPEAT = 100    # the smallest shapes: enough for a stable median, quickly
# Calls shorter than this (s) are re-warmed before each timed call (time_interleaved).
REWARM_BELOW = 0.01


class Timing(NamedTuple):
    median: float                    # seconds per call
    times: list                      # seconds per call, one per timed sample, in call order
    results: Optional[list] = None   # what each timed call returned (keep_results=True)


def thread_counts(text):
    """'1,all' -> [1, os.cpu_count()]: the thread counts of --threads, deduplicated in
    order. Raises ValueError for anything but positive ints and 'all'."""
    counts = []
    for entry in str(text).split(","):
        entry = entry.strip()
        if entry == "all":
            n = os.cpu_count() or 1
        else:
            try:
                n = int(entry)
            except ValueError:
                n = 0
            if n < 1:
                raise ValueError(f"expected positive integers or 'all', got {entry!r}")
        if n not in counts:
            counts.append(n)
    return counts


@contextmanager
def thread_limit(n):
    """Run the block with n threads in every BLAS and OpenMP pool threadpoolctl sees and,
    when torch is loaded, in torch's intra-op pool."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def _timed(run, number, results):
    """Seconds per call of `number` consecutive calls of run(), timed together (so that
    calls far shorter than the clock's resolution still time well); what each returned is
    appended to results unless it is None."""
    start = perf_counter()
    if results is None:
        for _ in range(number):
            run()
    else:
        for _ in range(number):
            results.append(run())
    return (perf_counter() - start) / number


def time_once(run, number=1):
    """Wall time of one call of run() in seconds: of `number` calls, divided by number."""
    return _timed(run, number, None)


def adaptive_repeat(seconds_per_call, budget=None, min_repeat=None, max_repeat=None):
    """How many timed calls fit in `budget` seconds (REPEAT_BUDGET), within [min_repeat,
    max_repeat] ([MIN_REPEAT, MAX_REPEAT]); a probe with other needs passes its own."""
    budget = REPEAT_BUDGET if budget is None else budget
    low = MIN_REPEAT if min_repeat is None else min_repeat
    high = MAX_REPEAT if max_repeat is None else max_repeat
    fitting = int(budget / max(seconds_per_call, 1e-9))
    return max(low, min(high, fitting))


def _rounds(repeat, warm_up_seconds):
    """repeat as given (a count), or chosen from the warm-up: by adaptive_repeat when None,
    by repeat itself when it is a function of the seconds per call."""
    if repeat is None:
        return adaptive_repeat(warm_up_seconds)
    if callable(repeat):
        return repeat(warm_up_seconds)
    return repeat


def time_call(run, repeat=None):
    """Time run(): one warm-up call, then `repeat` timed calls; their median and list.

    The warm-up pays the one-time costs (first touch of new memory, BLAS thread start-up)
    and, when repeat is None (adaptive_repeat) or a function of the seconds per call, its
    duration sets the repeat count.
    """
    warm_up = time_once(run)
    times = [time_once(run) for _ in range(_rounds(repeat, warm_up))]
    return Timing(statistics.median(times), times)


def time_interleaved(runs, repeat=None, number=1, keep_results=False):
    """Time several functions of no arguments fairly on a busy machine: one warm-up call
    of each, then `repeat` rounds calling each in turn; {name: Timing}.

    Interleaving spreads a burst of load from other processes over every backend instead
    of one. But a short call right after another backend's runs cold (caches and branch
    predictors refilled with the other's code and data; bench/RESULTS.md, "Reliability",
    has the measurement), so a run whose warm-up took less than REWARM_BELOW seconds gets
    one untimed call before each timed sample.

    repeat: a count, None (adaptive_repeat of the warm-ups' total) or a function of that
    total. number: calls per timed sample (an int, or {name: int}), each sample then in
    seconds per call. keep_results: each Timing also carries what its timed calls
    returned, in order (for probes whose call measures more than its wall time).
    """
    numbers = number if isinstance(number, Mapping) else dict.fromkeys(runs, number)
    warm_up = {name: time_once(run) for name, run in runs.items()}
    rounds = _rounds(repeat, sum(warm_up[name] * numbers[name] for name in runs))
    times = {name: [] for name in runs}
    results = {name: [] if keep_results else None for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            if warm_up[name] < REWARM_BELOW:
                run()
            times[name].append(_timed(run, numbers[name], results[name]))
    return {name: Timing(statistics.median(t), t, results[name]) for name, t in times.items()}
