"""pytest-benchmark suite of the GRU: compiled against reference forward+backward.

The same shapes, dtypes, random problems and timed unit as `fastbptt bench` (all from
fastbptt.bench, whose CELLS entry "gru" names gru_forward/gru_backward with 3 gates).
Each group is one shape and dtype, so pytest-benchmark lists the compiled and the
reference run side by side and its relative figures, in parentheses, are the speedup.
extra_info carries the shape, the FLOP count and GFLOP/s for --benchmark-json.
"""
import pytest

from fastbptt import bench

CELL = "gru"


@pytest.mark.parametrize("backend", list(bench.BACKENDS))
@pytest.mark.parametrize("dtype", bench.DEFAULT_DTYPES)
@pytest.mark.parametrize("shape", bench.DEFAULT_SHAPES,
                         ids=lambda shape: "x".join(map(str, shape)))
def test_gru_forward_backward(benchmark, shape, dtype, backend):
    # Built once per test and reused by every round, as `fastbptt bench` does (see
    # test_bench_rnn.py for why not pedantic's setup=).
    problem = bench.make_problem(CELL, *shape, dtype)
    run = bench.runner(CELL, backend, problem)
    # The untimed warm-up call also sizes the rounds: about a second of them, 3 to 100.
    rounds = bench.adaptive_repeat(bench.time_once(run))
    benchmark.group = f"{CELL} T,B,I,H={bench.shape_text(shape)} {dtype}"
    benchmark.pedantic(run, rounds=rounds)

    work = bench.flops(CELL, *shape)
    benchmark.extra_info.update(cell=CELL, shape=list(shape), dtype=dtype, flops=work)
    if benchmark.stats:   # None under --benchmark-disable, which runs the target once
        benchmark.extra_info["gflops"] = work / benchmark.stats.stats.median / 1e9
