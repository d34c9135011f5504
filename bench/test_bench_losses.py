"""pytest-benchmark suite of the fused output head and softmax cross-entropy: the compiled
fastbptt.softmax_cross_entropy against its reference twin, loss and every gradient.

Shapes: (N, H, V) = (35*20, 650, 10000), the medium word-level language model (35 steps,
batch 20, 650 units, 10k words), and (25, 100, 65), a character-level model of 25 steps
at batch 1. Each group is one shape and dtype, so pytest-benchmark lists compiled and
reference side by side; its relative figures, in parentheses, are the speedup. FLOPs:
the three GEMMs of the head, 6 N H V (the element-wise softmax is not counted).
"""
import pytest

from fastbptt import bench

SHAPES = [(35 * 20, 650, 10000), (25, 100, 65)]


@pytest.mark.parametrize("backend", list(bench.BACKENDS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_softmax_cross_entropy(benchmark, timed_rounds, shape, dtype, backend):
    h, W, b, targets = bench.make_head_problem(*shape, dtype)
    fn = bench.BACKENDS[backend].softmax_cross_entropy

    def run():
        return fn(h, W, b, targets)

    benchmark.group = f"softmax_cross_entropy N,H,V={','.join(map(str, shape))} {dtype}"
    timed_rounds(run)

    work = bench.head_flops(*shape)
    benchmark.extra_info.update(loss="softmax_cross_entropy", shape=list(shape), dtype=dtype,
                                flops=work)
    if benchmark.stats:   # None under --benchmark-disable, which runs the target once
        benchmark.extra_info["gflops"] = work / benchmark.stats.stats.median / 1e9
