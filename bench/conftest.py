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
