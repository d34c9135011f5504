"""Settings shared by the pytest-benchmark suites in bench/.

Run them with `pytest bench/ --benchmark-only`; pyproject's testpaths keeps them out of
the default `pytest` run.

One BLAS thread, `fastbptt bench`'s default: the figures then measure the code rather than
the core count, and compare with the single-thread anchors in the design notes. The run's
report header is the command's machine header, taken under the same limit.
"""
import pytest
from threadpoolctl import threadpool_limits

from fastbptt import bench

THREADS = 1


@pytest.fixture(scope="session", autouse=True)
def pinned_blas_threads():
    with threadpool_limits(limits=THREADS):
        yield


def pytest_report_header():
    with threadpool_limits(limits=THREADS):
        return bench.format_header(bench.machine_header())


@pytest.fixture
def forward_backward_benchmark(benchmark):
    """benchmark() of one cell's forward+backward, as `fastbptt bench` times it: call the
    returned function with (cell, shape, dtype, backend).

    Each group is one cell, shape and dtype, so pytest-benchmark lists the compiled and
    the reference run side by side and its relative figures, in parentheses, are the
    speedup. extra_info carries the shape, the FLOP count and GFLOP/s for --benchmark-json.
    """
    def run_benchmark(cell, shape, dtype, backend):
        # Built once per test and reused by every round, as `fastbptt bench` does, rather
        # than rebuilt by pedantic's setup= before each round: fresh arrays each round
        # would time a colder cache than the command's figures do.
        problem = bench.make_problem(cell, *shape, dtype)
        run = bench.runner(cell, backend, problem)
        # The untimed warm-up call also sizes the rounds: about a second of them, 3 to 100.
        rounds = bench.adaptive_repeat(bench.time_once(run))
        benchmark.group = f"{cell} T,B,I,H={bench.shape_text(shape)} {dtype}"
        benchmark.pedantic(run, rounds=rounds)

        work = bench.flops(cell, *shape)
        benchmark.extra_info.update(cell=cell, shape=list(shape), dtype=dtype, flops=work)
        if benchmark.stats:   # None under --benchmark-disable, which runs the target once
            benchmark.extra_info["gflops"] = work / benchmark.stats.stats.median / 1e9

    return run_benchmark
