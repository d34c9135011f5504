"""Settings shared by the pytest-benchmark suites in bench/.

Run them with `pytest bench/ --benchmark-only`; pyproject's testpaths keeps them out of
the default `pytest` run.

One BLAS (and torch) thread by default: the figures then measure the code rather than the
core count, and compare with the single-thread anchors in the design notes.
FASTBPTT_BENCH_THREADS=all (or a number) runs the suite under that many instead, the
`fastbptt bench --threads` rows. The run's report header is the command's machine header,
taken under the same limit.

As the command does, the session puts the C allocator into a long-running process's state
before any benchmark runs (bench.steady_allocator, pytest_configure), so that a figure does
not depend on which benchmarks ran before it; each benchmark's extra_info carries its
minor page faults per call (faults_per_call).
"""
import os

import pytest

from fastbptt import bench

THREADS = bench.thread_counts(os.environ.get("FASTBPTT_BENCH_THREADS", "1"))[0]
ALLOCATOR = None   # what steady_allocator did, for the header


def pytest_configure(config):
    global ALLOCATOR
    ALLOCATOR = bench.steady_allocator()


@pytest.fixture(scope="session", autouse=True)
def pinned_blas_threads():
    if bench.torch_available():
        import torch  # noqa: F401  (loaded first, so that thread_limit sets its pool too)
    with bench.thread_limit(THREADS):
        yield


def pytest_report_header():
    with bench.thread_limit(THREADS):
        header = bench.machine_header([THREADS], ceiling=False)
    header["allocator"] = ALLOCATOR
    return bench.format_header(header)


@pytest.fixture
def timed_rounds(benchmark):
    """benchmark.pedantic(run) as the suites call it: call the returned function with run.
    About a second of rounds (3 to 100), sized by one untimed warm-up call; the minor page
    faults per call in extra_info["faults_per_call"] (where getrusage exists and the rounds
    ran: not under --benchmark-disable, which runs the target once)."""
    def time_rounds(run):
        rounds = bench.adaptive_repeat(bench.time_once(run))
        before = bench.minor_faults()
        benchmark.pedantic(run, rounds=rounds)
        if before is not None and benchmark.stats:
            benchmark.extra_info["faults_per_call"] = (bench.minor_faults() - before) / rounds
    return time_rounds


@pytest.fixture
def forward_backward_benchmark(benchmark, timed_rounds):
    """benchmark() of one cell's forward+backward, as `fastbptt bench` times it: call the
    returned function with (cell, shape, dtype, backend).

    backend is one of bench.ALL_BACKENDS: compiled, reference, torch (skipped when torch
    is not importable), roofline (the kernels' GEMM calls alone). Each group is one cell,
    shape and dtype, so pytest-benchmark lists the backends side by side and its relative
    figures, in parentheses, are the ratios of the table. extra_info carries the shape,
    the FLOP count and GFLOP/s for --benchmark-json.
    """
    def run_benchmark(cell, shape, dtype, backend):
        if backend == "torch":
            pytest.importorskip("torch")
        if backend == "reference" and \
                bench.estimated_reference_seconds(cell, *shape) > bench.REFERENCE_BUDGET:
            pytest.skip(f"reference estimated over {bench.REFERENCE_BUDGET:g} s a call, "
                        "as `fastbptt bench` skips it")
        # Built once per test and reused by every round, as `fastbptt bench` does, rather
        # than rebuilt by pedantic's setup= before each round: fresh arrays each round
        # would time a colder cache than the command's figures do.
        problem = bench.make_problem(cell, *shape, dtype)
        run = bench.runner(cell, backend, problem)
        benchmark.group = f"{cell} T,B,I,H={bench.shape_text(shape)} {dtype}"
        timed_rounds(run)

        work = bench.flops(cell, *shape)
        benchmark.extra_info.update(cell=cell, shape=list(shape), dtype=dtype, flops=work)
        if benchmark.stats:   # None under --benchmark-disable, which runs the target once
            benchmark.extra_info["gflops"] = work / benchmark.stats.stats.median / 1e9

    return run_benchmark
