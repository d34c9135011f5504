"""pytest-benchmark suite of the peers: fastbptt's compiled forward+backward beside torch,
JAX and numba (fastbptt.bench.peers) on the same problems, as `fastbptt bench --peers`.

Every cell, the issue's six shapes and both dtypes; a peer that is not importable is
skipped with the reason. Each peer's outputs and gradients are checked against
fastbptt's (check_peer) before it is timed, as the command does. Each group is one cell,
shape and dtype with "peers" in its name, holding compiled and the peers, so that
pytest-benchmark's relative figures are the ratios of the command's "vs PEER" columns.
The threads are conftest.py's (pinned_blas_threads); JAX starts at that count.
"""
import os

import pytest

from fastbptt import bench

# conftest.THREADS, the count the session is pinned to (JAX must start at it)
THREADS = bench.thread_counts(os.environ.get("FASTBPTT_BENCH_THREADS", "1"))[0]


@pytest.mark.parametrize("backend", ["compiled", *bench.PEERS])
@pytest.mark.parametrize("dtype", bench.DEFAULT_DTYPES)
@pytest.mark.parametrize("shape", bench.ISSUE_SHAPES,
                         ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("cell", list(bench.CELLS))
def test_peer_forward_backward(benchmark, timed_rounds, cell, shape, dtype, backend):
    problem = bench.make_problem(cell, *shape, dtype)
    if backend == "compiled":
        run = bench.runner(cell, backend, problem)
    else:
        ok, detail = bench.peer(backend).available()
        if not ok:
            pytest.skip(f"peer {backend}: {detail}")
        try:
            prepared = bench.peer(backend).prepare(cell, problem, threads=THREADS)
        except bench.PeerUnavailable as exc:
            pytest.skip(f"peer {backend}: {exc}")
        bench.check_peer(backend, prepared.result, bench.expected_result(cell, problem),
                         f" at {cell} {bench.shape_text(shape)} {dtype}")
        run = prepared.run
    benchmark.group = f"{cell} T,B,I,H={bench.shape_text(shape)} {dtype} peers"
    timed_rounds(run)   # its warm-up call sizes the rounds (prepare paid any compilation)

    work = bench.flops(cell, *shape)
    benchmark.extra_info.update(cell=cell, shape=list(shape), dtype=dtype, flops=work,
                                backend=backend)
    if benchmark.stats:   # None under --benchmark-disable, which runs the target once
        benchmark.extra_info["gflops"] = work / benchmark.stats.stats.median / 1e9
