"""The timer behind every figure of the benchmark: warm-up, timed calls, their median, the
repeat count and the thread limits. Nothing here knows about cells or backends: a timed
unit is any function of no arguments, so a new peer or probe needs no change here.

A figure is the median of timed calls after one untimed warm-up call, rather than the
minimum or the mean: it describes a typical call and ignores the occasional preemption on
a small shared machine. Calls to be compared are timed interleaved (time_interleaved), so
that a burst of load from other processes spreads over all of them instead of one; each
timed sample also counts the process's minor page faults (minor_faults), which show how
much fresh memory a call had the kernel hand it. steady_allocator puts the C allocator
into the state of a long-running process before anything is timed, so that those faults,
and the times, do not depend on what ran earlier in the process.
"""
import ctypes
import mmap
import os
import statistics
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from time import perf_counter
from typing import NamedTuple, Optional

from threadpoolctl import threadpool_limits

try:
    import resource
except ImportError:   # Windows: no getrusage, so no page-fault counts
    resource = None

# `fastbptt bench --threads` without the option: one row at one thread, one at all cores.
DEFAULT_THREADS = "1,all"

# Seconds of timed calls per measurement when the repeat count is chosen adaptively.
REPEAT_BUDGET = 1.0
MIN_REPEAT = 3      # the largest shapes: a median still discards one outlier
MAX_REPEAT = 100    # the smallest shapes: enough for a stable median, quickly
# Calls shorter than this (s) are re-warmed before each timed call (time_interleaved).
REWARM_BELOW = 0.01


# glibc's ceiling on its dynamic mmap threshold, DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
# (4 MiB * sizeof(long)); mallopt's parameter for the trim threshold (malloc.h).
_MMAP_THRESHOLD_MAX = 32 * 2**20
_M_TRIM_THRESHOLD = -1


class Timing(NamedTuple):
    median: float                    # seconds per call
    times: list                      # seconds per call, one per timed sample, in call order
    results: Optional[list] = None   # what each timed call returned (keep_results=True)
    faults: Optional[list] = None    # minor page faults per call, one per timed sample
    #                                  (time_interleaved; None without getrusage)


def minor_faults():
    """The minor page faults this process has taken so far, in all its threads (getrusage;
    a peer's runtime may allocate in threads of its own), or None where there is no
    resource module (Windows). A minor fault is the kernel handing the process a page it
    had not touched yet, or had taken back: fresh, zeroed memory, 4 KiB a fault (2 MiB
    where a transparent huge page backs it)."""
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def steady_allocator():
    """Put glibc's malloc into the state of a long-running process before anything is
    timed, so that no row's figures depend on the rows before it; a no-op elsewhere.
    Returns the state in words, for the machine header.

    Why: glibc serves a block of at least its mmap threshold (128 KiB at start) with a
    fresh mmap and unmaps it on free, and it gives the top of its heap back to the kernel
    (trims it) once more than its trim threshold (twice the mmap threshold) lies free
    there. Either way the next call faults the same memory in again. The thresholds rise
    as the process runs: freeing an mmapped block larger than the mmap threshold raises it
    to that block's size, up to 32 MiB. So torch's LSTM at (35,20,650) took 12,428 faults
    a call (48 MiB of fresh pages each time) and a quarter more time in a fresh process
    than after a larger row had run (bench/RESULTS.md, "torch's LSTM time depends on the
    rest of the row"). fastbptt's calls take none in either state (its workspace keeps its
    buffers), so a state that spares the others faults can only favour them: the
    conservative choice.

    What, in this order: (1) malloc and free one block just under 32 MiB, which raises the
    mmap threshold to its ceiling, where any long-running program that once freed a block
    that large has it. The block's chunk (the block and malloc's 8-byte header, rounded up
    to whole pages) must be at most 32 MiB counting the IS_MMAPPED flag bit of its size
    word, so a chunk of exactly 32 MiB fails: the block is two pages short of 32 MiB.
    (2) Turn heap trimming off (mallopt(M_TRIM_THRESHOLD, -1)). Step 1 alone did not do:
    the backends of a row run interleaved on one heap, their freed blocks meet at its top
    beyond the largest trim threshold glibc reaches (64 MiB) and go back to the kernel,
    and torch still took a median 14,080-15,729 faults a call at (35,20,650) in five of
    six rows measured (beside compiled and the roofline only, too), where torch timed
    alone in a process took none after its first calls (bench/RESULTS.md, "The
    allocator's state"). Step 2 also fixes the mmap threshold where step 1 left it.
    Blocks of 32 MiB or more are still mapped afresh each call (JAX's 40 MiB buffer at
    (35,20,650)), as in any glibc process; nothing else changes, and what a backend frees
    stays with the process.
    """
    libc = _glibc()
    if libc is None:
        return "not glibc: left as it is"
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(_MMAP_THRESHOLD_MAX - 2 * mmap.PAGESIZE))
    trimming = "off" if libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1 else "on (mallopt failed)"
    return (f"{os.confstr('CS_GNU_LIBC_VERSION')} malloc: mmap threshold raised to "
            f"{_MMAP_THRESHOLD_MAX // 2**20} MiB, heap trimming {trimming} (steady_allocator)")


def _glibc():
    """The C library's symbols when it is glibc, else None (musl, macOS, Windows)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (AttributeError, ValueError, OSError):   # no confstr, or not this name
        return None
    return ctypes.CDLL(None)


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
    returned, in order (for probes whose call measures more than its wall time). Each
    Timing's faults are the minor page faults per call of each timed sample, counted
    outside its clock readings (None without getrusage).
    """
    numbers = number if isinstance(number, Mapping) else dict.fromkeys(runs, number)
    warm_up = {name: time_once(run) for name, run in runs.items()}
    rounds = _rounds(repeat, sum(warm_up[name] * numbers[name] for name in runs))
    times = {name: [] for name in runs}
    faults = {name: [] for name in runs}
    results = {name: [] if keep_results else None for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            if warm_up[name] < REWARM_BELOW:
                run()
            before = minor_faults()
            times[name].append(_timed(run, numbers[name], results[name]))
            if before is not None:
                count = minor_faults() - before
                faults[name].append(count if numbers[name] == 1 else count / numbers[name])
    return {name: Timing(statistics.median(t), t, results[name], faults[name] or None)
            for name, t in times.items()}
