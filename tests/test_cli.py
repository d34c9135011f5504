"""The `fastbptt` command and the benchmark logic behind it (fastbptt.bench).

Smoke tests on tiny shapes with one timed call: the command runs, prints what it promises
and rejects bad options the argparse way; plus the arithmetic the table rests on (the
FLOP count, the median, the repeat policy, the random problem).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from _helpers import fake_clock
from fastbptt import bench
from fastbptt.app.cli import main
from fastbptt.bench import report
from fastbptt.cells.spec import CELLS

HEADINGS = ["T,B,I,H", "dtype", "cell", "threads", "compiled ms", "reference ms", "speedup",
            "compiled GFLOP/s", "roofline ms", "efficiency"]
# The smoke tests leave torch out (--no-torch): its import alone takes seconds.
FAST = ["--no-torch", "--threads", "1"]


@pytest.fixture(autouse=True)
def small_ceiling(monkeypatch):
    """The header's GEMM ceiling on a 64-square GEMM: the smoke tests time tiny shapes."""
    monkeypatch.setattr(report, "CEILING_N", 64)


def table(out):
    """The printed table's lines split into their entries: headings, rule, then the rows."""
    return [[entry.strip() for entry in line.strip("|").split("|")]
            for line in out.splitlines() if line.startswith("|")]


def test_bench_prints_header_and_table(capsys):
    assert main(["bench", "--shapes", "3,2,4", "--repeat", "1", *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fastbptt ")
    assert "BLAS: " in out and "OPENBLAS_CORETYPE: " in out and "GEMM ceiling" in out
    assert table(out)[0] == HEADINGS
    rows = table(out)[2:]
    assert [row[:4] for row in rows] == [["3,2,4,4", dtype, cell, "1"]
                                         for dtype in ("float32", "float64")
                                         for cell in CELLS]
    for row in rows:
        assert float(row[4]) > 0 and row[6].endswith("x") and row[9].endswith("%")


def test_bench_json_parses(capsys):
    assert main(["bench", "--cells", "rnn", "--shapes", "3,2,4;2,1,3,5", "--repeat", "2",
                 "--json", *FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    header, rows = report["header"], report["rows"]
    assert header["fastbptt"] and header["numpy"] and header["cpu"]
    assert header["blas"] and all(lib["num_threads"] == 1 for lib in header["blas"])
    assert [(row["shape"], row["dtype"]) for row in rows] == [
        ([3, 2, 4, 4], "float32"), ([3, 2, 4, 4], "float64"),
        ([2, 1, 3, 5], "float32"), ([2, 1, 3, 5], "float64")]
    for row in rows:
        assert len(row["compiled_times_ms"]) == len(row["reference_times_ms"]) == 2
        gflops = row["flops"] / row["compiled_ms"] / 1e6
        assert row["compiled_gflops"] == pytest.approx(gflops)
        assert row["speedup"] == pytest.approx(row["reference_ms"] / row["compiled_ms"])
        assert row["efficiency"] == pytest.approx(row["roofline_ms"] / row["compiled_ms"])
        assert row["threads"] == 1 and row["reference_skipped"] is False
    assert set(header["gemm_ceiling_gflops"]) == {"float32", "float64"}


def test_bench_one_dtype(capsys):
    assert main(["bench", "--cells", "rnn", "--shapes", "3,2,4", "--repeat", "1",
                 "--dtypes", "float32", *FAST]) == 0
    assert [row[1] for row in table(capsys.readouterr().out)[2:]] == ["float32"]


def test_bench_no_reference(capsys):
    assert main(["bench", "--cells", "rnn", "--shapes", "3,2,4", "--repeat", "1", "--no-reference",
                 "--no-roofline", *FAST]) == 0
    out = capsys.readouterr().out
    assert table(out)[0] == ["T,B,I,H", "dtype", "cell", "threads", "compiled ms",
                             "compiled GFLOP/s"]
    assert len(table(out)) == 2 + 2


def test_bench_threads_shown_in_header(capsys):
    assert main(["bench", "--shapes", "2,1,3", "--repeat", "1", "--no-torch",
                 "--threads", "2"]) == 0
    out = capsys.readouterr().out
    blas_lines = [line for line in out.splitlines() if line.startswith("BLAS")]
    # MKL, where fastbptt loaded it for the packed per-step products, is loaded
    # sequential (fastbptt.runtime.packing): those products never run threaded
    threaded = [line for line in blas_lines if ", sequential, " not in line]
    assert threaded and all(line.endswith(", 2 threads") for line in threaded)


@pytest.mark.parametrize("shapes", [
    ["3,2,4;2,1,3,5"],                        # one argument, ';'-separated
    ["3,2,4", "2,1,3,5"],                     # several arguments
    ["3,2,4", "--shapes", "2,1,3,5"],         # the option repeated
])
def test_bench_shape_lists(capsys, shapes):
    argv = ["bench", "--cells", "rnn", "--repeat", "1", "--dtypes", "float64",
            "--no-reference", *FAST,
            "--shapes"]
    assert main(argv + shapes) == 0
    assert [row[0] for row in table(capsys.readouterr().out)[2:]] == ["3,2,4,4", "2,1,3,5"]


@pytest.mark.parametrize("option, value", [
    ("--shapes", "3,2"),
    ("--shapes", "3,x,4"),
    ("--shapes", "3,0,4"),
    ("--shapes", "3,2,4;;"),
    ("--dtypes", "float16"),
    ("--cells", "transformer"),
    ("--repeat", "0"),
    ("--threads", "two"),
    ("--threads", "1,0"),
    ("--reference-budget", "-1"),
])
def test_bench_bad_option_is_an_argparse_error(capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"fastbptt bench: error: argument {option}:" in err


def test_no_command_prints_help_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "bench" in capsys.readouterr().err


def test_python_m_fastbptt_bench():
    result = subprocess.run(
        [sys.executable, "-m", "fastbptt", "bench", "--shapes", "2,1,3", "--repeat", "1",
         "--no-torch",
         "--no-roofline"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "compiled ms" in result.stdout and "2,1,3,3" in result.stdout
    # a process of its own: the real steady_allocator, and the faults below the table
    allocator = next(line for line in result.stdout.splitlines()
                     if line.startswith("Allocator: "))
    assert allocator.endswith(("heap trimming off (steady_allocator)", "left as it is"))
    if bench.minor_faults() is not None:
        assert "\nMinor page faults per timed call (median)" in result.stdout


def test_flops_formula():
    # T=100, B=1, I=H=32: 6 * 100 * 1 * (32+32) * 1 * 32
    assert bench.flops("rnn", 100, 1, 32, 32) == 1_228_800
    # I and H enter differently: 6 * 25 * 1 * (65+100) * 100
    assert bench.flops("rnn", 25, 1, 65, 100) == 2_475_000


def test_flops_scale_with_gates(monkeypatch):
    monkeypatch.setitem(bench.CELLS, "four_gates", bench.Cell("f", "b", gates=4))
    assert bench.flops("four_gates", 3, 2, 5, 7) == 4 * bench.flops("rnn", 3, 2, 5, 7)


def test_time_call_median_and_list(monkeypatch):
    fake_clock(monkeypatch, [100.0, 5.0, 1.0, 4.0, 2.0, 3.0])   # warm-up first, untimed
    timing = bench.time_call(lambda: None, repeat=5)
    assert timing.times == pytest.approx([5.0, 1.0, 4.0, 2.0, 3.0])
    assert timing.median == pytest.approx(3.0)


def test_time_call_median_of_an_even_count(monkeypatch):
    fake_clock(monkeypatch, [1.0, 4.0, 1.0, 3.0, 2.0])
    assert bench.time_call(lambda: None, repeat=4).median == pytest.approx(2.5)


def test_time_call_adaptive_repeat_follows_the_warm_up(monkeypatch):
    warm_up = bench.REPEAT_BUDGET / 10
    fake_clock(monkeypatch, [warm_up] * 11)
    assert len(bench.time_call(lambda: None).times) == 10


def test_adaptive_repeat_bounds():
    assert bench.adaptive_repeat(0.0) == bench.MAX_REPEAT
    assert bench.adaptive_repeat(1e-6) == bench.MAX_REPEAT
    assert bench.adaptive_repeat(bench.REPEAT_BUDGET / 20) == 20
    assert bench.adaptive_repeat(10 * bench.REPEAT_BUDGET) == bench.MIN_REPEAT


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_make_problem(dtype):
    T, B, I, H = 4, 3, 5, 6
    p = bench.make_problem("rnn", T, B, I, H, dtype, seed=1)
    shapes = [a.shape for a in (p.x, *p.states, p.W_ih, p.W_hh, p.b_ih, p.b_hh, p.dh)]
    assert shapes == [(T, B, I), (B, H), (H, I), (H, H), (H,), (H,), (T, B, H)]
    assert all(a.dtype == dtype for a in (p.x, *p.states, p.W_ih, p.W_hh, p.dh))
    for w in (p.W_ih, p.W_hh, p.b_ih, p.b_hh):   # torch.nn's U(-1/sqrt(H), 1/sqrt(H))
        assert np.abs(w).max() <= 1 / np.sqrt(H)
    same = bench.make_problem("rnn", T, B, I, H, np.float64, seed=1)
    np.testing.assert_array_equal(p.W_hh, same.W_hh.astype(dtype))


@pytest.mark.parametrize("backend", list(bench.BACKENDS))
def test_runner_runs_forward_and_backward(backend):
    p = bench.make_problem("rnn", 4, 3, 5, 6, np.float64)
    grads = bench.runner("rnn", backend, p)()
    assert grads.dW_hh.shape == (6, 6) and grads.dx.shape == p.x.shape


# ---------------------------------------------------------------- demo and sample

TINY_DEMO = ["--hidden", "16", "--seq-len", "8", "--batch", "4", "--sample-length", "15"]


def test_demo_then_sample(capsys, tmp_path):
    ckpt = tmp_path / "m.npz"
    assert main(["demo", "--steps", "4", "--cell", "gru", "--checkpoint", str(ckpt),
                 "--sample-every", "2", *TINY_DEMO]) == 0
    out = capsys.readouterr().out
    for promise in ("unigram baseline", "--- sample at step 2", "--- sample at step 4",
                    "trained 4 steps", "held-out", f"checkpoint: {ckpt}"):
        assert promise in out
    assert main(["sample", str(ckpt), "--length", "30", "--seed", "1", "--prime", "The "]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("The ") and len(text) == 34
    assert main(["sample", str(ckpt), "--length", "30", "--seed", "1", "--prime", "The "]) == 0
    assert capsys.readouterr().out.rstrip("\n") == text     # seeded


def test_demo_threads_option(capsys):
    assert main(["demo", "--steps", "1", "--checkpoint", "", "--threads", "1", *TINY_DEMO]) == 0
    assert "BLAS on 1 thread(s)" in capsys.readouterr().out
    assert main(["demo", "--steps", "1", "--checkpoint", "", "--threads", "all",
                 *TINY_DEMO]) == 0
    assert "BLAS on all cores" in capsys.readouterr().out


def test_demo_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    assert main(["demo", "--steps", "3", "--checkpoint", "", "--plot", str(png),
                 *TINY_DEMO]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "checkpoint:" not in capsys.readouterr().out


def test_python_m_fastbptt_demo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastbptt", "demo", "--steps", "2", "--checkpoint",
         str(tmp_path / "m.npz"), *TINY_DEMO],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "unigram baseline" in result.stdout and (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("argv, needle", [
    (["demo", "--cell", "transformer"], "--cell"),
    (["demo", "--steps", "0"], "--steps"),
    (["demo", "--lr", "-1"], "--lr"),
    (["demo", "--backend", "gpu"], "--backend"),
    (["demo", "--threads", "0"], "--threads"),
    (["demo", "--threads", "many"], "--threads"),
    (["sample", "x.npz", "--temperature", "0"], "--temperature"),
    (["sample", "x.npz", "--length", "-3"], "--length"),
])
def test_demo_and_sample_reject_bad_options(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and needle in capsys.readouterr().err


def test_demo_and_sample_report_bad_files(capsys, tmp_path):
    assert main(["demo", "--text", str(tmp_path / "missing.txt"), *TINY_DEMO]) == 1
    assert "fastbptt demo: error:" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing.npz")]) == 1
    assert "fastbptt sample: error:" in capsys.readouterr().err


def test_threads_list_gives_a_row_per_count(capsys):
    argv = ["bench", "--cells", "rnn", "--shapes", "3,2,4", "--repeat", "1", "--dtypes", "float32",
            "--no-torch", "--threads", "1,all,1"]
    assert main(argv) == 0
    counts = bench.thread_counts("1,all")
    assert [int(row[3]) for row in table(capsys.readouterr().out)[2:]] == counts


def test_reference_skipped_over_budget(capsys):
    # 1e-9 s: every reference call is estimated above it
    argv = ["bench", "--cells", "gru", "--shapes", "3,2,4", "--repeat", "1", "--dtypes", "float32",
            "--reference-budget", "1e-9", *FAST]
    assert main(argv) == 0
    row = table(capsys.readouterr().out)[2]
    assert row[5] == "skipped" and row[6] == "-"


def test_reference_estimate_grows_with_work():
    small = bench.estimated_reference_seconds("rnn", 100, 1, 32, 32)
    assert small < bench.REFERENCE_BUDGET
    assert bench.estimated_reference_seconds("lstm", 50, 64, 1024, 1024) > bench.REFERENCE_BUDGET
    assert bench.estimated_reference_seconds("lstm", 100, 1, 32, 32) > small


def test_thread_counts():
    assert bench.thread_counts("1") == [1]
    assert bench.thread_counts("all") == [os.cpu_count()]
    assert bench.thread_counts("2,1,2") == [2, 1]
    with pytest.raises(ValueError):
        bench.thread_counts("1,-2")


@pytest.mark.parametrize("cell", list(bench.CELLS))
@pytest.mark.parametrize("shape", [(5, 1, 4, 6), (5, 3, 4, 6)])
def test_roofline_runs_the_kernels_gemm_shapes(cell, shape):
    # It must accept every form the wrappers pick (GEMV at B = 1, transposed, plain).
    p = bench.make_problem(cell, *shape, np.float32)
    bench.runner(cell, "roofline", p)()


def test_gemm_ceiling_is_positive():
    assert bench.gemm_ceiling_gflops(np.float64, n=64, repeat=1) > 0


def test_the_ceiling_above_one_thread_with_a_sequential_blas(monkeypatch):
    """Under MKL (sequential: one core per call) the n-thread ceiling is n one-thread
    GEMMs at once, said in the header; the threaded BLAS keeps its own n-thread GEMM."""
    from fastbptt._kernels import blas
    from fastbptt.bench import report

    assert report.concurrent_ceiling_gflops(np.float64, 2, n=64, repeat=1) > 0
    calls = []
    monkeypatch.setattr(report, "concurrent_ceiling_gflops",
                        lambda dtype, n: calls.append(n) or 1.0)
    for library, want in (("mkl", [2]), ("scipy", [])):
        monkeypatch.setattr(blas, "gemm_library", lambda: library)
        calls.clear()
        header = report.machine_header(threads=[1, 2], dtypes=["float64"], torch=False)
        assert calls == want
        line = next(x for x in report.format_header(header, legend=False)
                    if x.startswith("GEMM ceiling"))
        assert ("one-thread GEMMs at once" in line) == (library == "mkl")


@pytest.mark.parametrize("cell", list(bench.CELLS))
def test_torch_runner_does_the_same_work(cell):
    pytest.importorskip("torch")
    p = bench.make_problem(cell, 5, 3, 4, 6, np.float64)
    dx_torch = bench.runner(cell, "torch", p)().numpy()
    dx = bench.runner(cell, "compiled", p)().dx
    np.testing.assert_allclose(dx_torch, dx, rtol=1e-10, atol=1e-12)


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    argv = ["bench", "--cells", "rnn", "--shapes", "3,2,4", "--repeat", "1", "--dtypes", "float32",
            "--plot", str(path), *FAST]
    assert main(argv) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_full_runs_the_issue_shapes(capsys, monkeypatch):
    monkeypatch.setattr(bench, "ISSUE_SHAPES", [(2, 1, 3, 3), (3, 2, 4, 4)])
    argv = ["bench", "--cells", "rnn", "--repeat", "1", "--dtypes", "float32", "--full", *FAST]
    assert main(argv) == 0
    assert [row[0] for row in table(capsys.readouterr().out)[2:]] == ["2,1,3,3", "3,2,4,4"]


def test_time_interleaved_rounds_and_rewarm(monkeypatch):
    calls = []
    runs = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    # warm-ups: a short (re-warmed, untimed, before each timed call), b long (not); then
    # the timed calls of two rounds
    durations = [0.001, 1.0] + [0.002, 1.0] * 2
    fake_clock(monkeypatch, durations)
    timings = bench.time_interleaved(runs, repeat=2)
    assert calls == ["a", "b"] + ["a", "a", "b"] * 2
    assert timings["a"].times == pytest.approx([0.002, 0.002])
    assert timings["b"].times == pytest.approx([1.0, 1.0])
