"""pytest-benchmark suite of the LSTM with a projection (issue 18), as `fastbptt bench
--proj-size`: the compiled projected LSTM, the plain compiled LSTM of the same sizes and
torch.nn.LSTM(proj_size=P) (checked against fastbptt before it is timed; skipped when
torch is not importable), one group per shape and dtype so that pytest-benchmark's
relative figures are the command's ratios. fastbptt.bench.lstmp holds the work."""
import pytest

from fastbptt import bench
from fastbptt.bench import lstmp


@pytest.mark.parametrize("backend", ["compiled", "lstm", "torch"])
@pytest.mark.parametrize("dtype", bench.DEFAULT_DTYPES)
@pytest.mark.parametrize("shape", lstmp.PROJECTION_SHAPES,
                         ids=lambda shape: "x".join(map(str, shape)))
def test_projected_lstm_forward_backward(benchmark, timed_rounds, shape, dtype, backend):
    T, B, I, H = shape
    P = lstmp.PROJ_SIZE
    problem = lstmp.make_projected_problem(T, B, I, H, P, dtype)
    if backend == "compiled":
        run = lstmp.api_run(bench.BACKENDS["compiled"], problem)
    elif backend == "lstm":
        run = bench.runner("lstm", "compiled", bench.make_problem("lstm", *shape, dtype))
    else:
        try:
            run, result = lstmp.prepare_torch(problem)
        except bench.PeerUnavailable as exc:
            pytest.skip(f"torch: {exc}")
        bench.check_peer("torch", result, lstmp.expected_projected_result(problem),
                         f" at lstm proj_size={P} {bench.shape_text(shape)} {dtype}")
    benchmark.group = f"lstm proj_size={P} T,B,I,H={bench.shape_text(shape)} {dtype}"
    timed_rounds(run)
    work = lstmp.projected_flops(T, B, I, H, P)
    benchmark.extra_info.update(shape=list(shape), proj_size=P, dtype=dtype, flops=work,
                                backend=backend)
    if benchmark.stats:
        benchmark.extra_info["gflops"] = work / benchmark.stats.stats.median / 1e9
