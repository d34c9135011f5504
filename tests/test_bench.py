"""The benchmark package (fastbptt.bench): its layout, the harness features the probes in
bench/ rely on, the softmax-head problem, and that the CLI loads it only for `bench`.

The `fastbptt bench` command itself and the table's arithmetic are tested in
test_cli.py."""
import json
import mmap
import subprocess
import sys

import numpy as np
import pytest

import fastbptt
from _helpers import fake_clock
from fastbptt import bench
from fastbptt.bench import harness, problems, report

# Every name of the single-module fastbptt.bench before it became a package.
OLD_NAMES = [
    "ALL_BACKENDS", "BACKENDS", "CELLS", "CEILING_N", "Cell", "DEFAULT_DTYPES",
    "DEFAULT_SHAPES", "DEFAULT_THREADS", "ISSUE_SHAPES", "MAX_REPEAT", "MIN_REPEAT",
    "Problem", "REFERENCE_BUDGET", "REPEAT_BUDGET", "REWARM_BELOW", "Timing",
    "adaptive_repeat", "estimated_reference_seconds", "flops", "format_header",
    "gemm_ceiling_gflops", "machine_header", "make_problem", "measure_rows", "plot",
    "runner", "shape_text", "table_lines", "thread_counts", "thread_limit",
    "time_call", "time_interleaved", "time_once", "torch_available",
]


@pytest.mark.parametrize("name", OLD_NAMES)
def test_every_old_name_is_still_there(name):
    assert name in bench.__all__
    home = next(m for m in (harness, problems, report) if hasattr(m, name))
    assert getattr(bench, name) is getattr(home, name)


def test_all_names_resolve():
    for name in bench.__all__:
        assert hasattr(bench, name), name


def test_harness_knows_no_cells():
    # the timer is generic: no cell table, backend or problem is defined or imported there
    names = set(vars(harness))
    assert not names & {"CELLS", "Cell", "BACKENDS", "RUNNERS", "Problem", "flops", "fastbptt"}


def test_time_once_divides_by_number(monkeypatch):
    calls = []
    fake_clock(monkeypatch, [6.0])
    assert bench.time_once(lambda: calls.append(1), number=3) == pytest.approx(2.0)
    assert len(calls) == 3


def test_time_interleaved_number_per_run_and_results(monkeypatch):
    counts = {"a": 0, "b": 0}

    def make(name):
        def run():
            counts[name] += 1
            return counts[name]
        return run

    # warm-ups 1 s each (no re-warm), then two rounds: a's 3 calls take 6 s, b's 2 take 8 s
    fake_clock(monkeypatch, [1.0, 1.0, 6.0, 8.0, 6.0, 8.0])
    timings = bench.time_interleaved({"a": make("a"), "b": make("b")}, repeat=2,
                                     number={"a": 3, "b": 2}, keep_results=True)
    assert timings["a"].times == pytest.approx([2.0, 2.0])
    assert timings["b"].times == pytest.approx([4.0, 4.0])
    # the warm-up's call (1) is not kept: only the timed calls, in order
    assert timings["a"].results == [2, 3, 4, 5, 6, 7]
    assert timings["b"].results == [2, 3, 4, 5]
    assert counts == {"a": 7, "b": 5}


def test_time_interleaved_keeps_no_results_by_default():
    timings = bench.time_interleaved({"a": lambda: np.zeros(3)}, repeat=2)
    assert timings["a"].results is None and len(timings["a"].times) == 2


def test_adaptive_number_scales_the_rounds(monkeypatch):
    # warm-up of one call: REPEAT_BUDGET / 40; ten calls a sample: four samples fit
    fake_clock(monkeypatch, [bench.REPEAT_BUDGET / 40] + [0.0] * 4)
    timing = bench.time_interleaved({"a": lambda: None}, number=10)["a"]
    assert len(timing.times) == 4


def test_adaptive_repeat_takes_its_own_bounds():
    assert bench.adaptive_repeat(0.1, budget=2.0) == 20
    assert bench.adaptive_repeat(0.1, budget=2.0, max_repeat=7) == 7
    assert bench.adaptive_repeat(10.0, min_repeat=5) == 5
    assert bench.adaptive_repeat(1e-7, budget=2.0, max_repeat=20000) == 20000


def test_time_call_repeat_as_a_policy(monkeypatch):
    seen = []

    def policy(seconds):
        seen.append(seconds)
        return 2

    fake_clock(monkeypatch, [0.5, 1.0, 3.0])
    timing = bench.time_call(lambda: None, policy)
    assert seen == [pytest.approx(0.5)] and timing.times == pytest.approx([1.0, 3.0])


def test_runner_rejects_unknown_names():
    p = bench.make_problem("rnn", 2, 1, 3, 4, np.float64)
    with pytest.raises(ValueError, match="backend 'gpu'"):
        bench.runner("rnn", "gpu", p)
    with pytest.raises(ValueError, match="cell 'transformer'"):
        bench.runner("transformer", "compiled", p)


def test_every_backend_is_a_runner_in_column_order():
    assert bench.ALL_BACKENDS == list(bench.RUNNERS) == ["compiled", "reference", "torch",
                                                         "roofline"]


@pytest.mark.parametrize("cell", list(bench.CELLS))
def test_compiled_and_reference_runners_agree(cell):
    p = bench.make_problem(cell, 4, 3, 5, 6, np.float64)
    compiled = bench.runner(cell, "compiled", p)()
    reference = bench.runner(cell, "reference", p)()
    for name in ("dx", "dW_ih", "dW_hh"):
        np.testing.assert_allclose(getattr(compiled, name), getattr(reference, name),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", list(bench.CELLS))
def test_transposed_step_is_the_wrappers_choice(cell):
    # B = 1 runs per-row GEMVs, never the transposed GEMM; some larger batch does transpose
    # (with MKL's packer the packed form takes B 5-64, so past 64 rows)
    assert not bench.transposed_step(cell, 1, 64, np.float32)
    assert any(bench.transposed_step(cell, B, 256, np.float32) for B in (2, 8, 32, 100))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_head_problem(dtype):
    N, H, V = 7, 5, 11
    h, W, b, targets = bench.make_head_problem(N, H, V, dtype, seed=2)
    assert (h.shape, W.shape, b.shape, targets.shape) == ((N, H), (V, H), (V,), (N,))
    assert h.dtype == W.dtype == b.dtype == dtype
    assert np.abs(h).max() < 1 and np.abs(W).max() <= 0.1 and not b.any()
    assert targets.min() >= 0 and targets.max() < V
    loss, _ = fastbptt.softmax_cross_entropy(h, W, b, targets)
    assert np.isfinite(loss)
    assert bench.head_flops(N, H, V) == 6 * N * H * V


def test_format_header_without_legend():
    header = bench.machine_header([1], ceiling=False, torch=False)
    full, machine = bench.format_header(header), bench.format_header(header, legend=False)
    assert full[:len(machine)] == machine and len(full) > len(machine)
    assert not any(line.startswith(("Timed", "GFLOP", "roofline", "reference skipped"))
                   for line in machine)


def test_json_report_consumes_a_generator():
    rows = ({"n": n} for n in range(3))
    report_ = json.loads(bench.json_report({"cpu": "x"}, rows))
    assert report_ == {"header": {"cpu": "x"}, "rows": [{"n": 0}, {"n": 1}, {"n": 2}]}


# ---------------------------------------------------------------- the CLI loads it lazily

LOADED = "import sys; print('fastbptt.bench' in sys.modules)"


def run_cli(code, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_demo_and_sample_do_not_import_the_benchmark(tmp_path):
    code = ("from fastbptt.app.cli import main\n"
            "assert main(['demo', '--steps', '2', '--hidden', '8', '--seq-len', '4', "
            "'--batch', '2', '--sample-length', '5', '--checkpoint', 'm.npz']) == 0\n"
            "assert main(['sample', 'm.npz', '--length', '5', '--seed', '0']) == 0\n"
            "try:\n    main(['demo', '--help'])\nexcept SystemExit:\n    pass\n" + LOADED)
    assert run_cli(code, tmp_path) == "False"


def test_bench_help_imports_the_benchmark_and_shows_its_defaults(tmp_path):
    code = ("import contextlib, io\nfrom fastbptt.app.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n    try:\n        main(['bench', '--help'])\n"
            "    except SystemExit:\n        pass\n"
            "import sys; print(' '.join(out.getvalue().split()))\n" + LOADED)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    help_text, loaded = result.stdout.splitlines()[-2:]
    assert loaded == "True"
    shapes = "; ".join(bench.shape_text(s) for s in bench.DEFAULT_SHAPES)
    for promise in (f"from: {', '.join(bench.CELLS)}", f"(default: {shapes})",
                    f"about {bench.REPEAT_BUDGET:g} s, {bench.MIN_REPEAT} to {bench.MAX_REPEAT}",
                    f"(default: {bench.DEFAULT_THREADS})",
                    f"(default: {bench.REFERENCE_BUDGET:g})"):
        assert promise in help_text


# ---------------------------------------------------------------- the peers

def _require(name):
    """Skip (with the reason) unless the peer can run here."""
    ok, detail = bench.peer(name).available()
    if not ok:
        pytest.skip(f"peer {name}: {detail}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", list(bench.CELLS))
@pytest.mark.parametrize("name", list(bench.PEERS))
def test_peer_agrees_with_fastbptt(name, cell, dtype):
    # the same weights and work: outputs at every step and every gradient, dtype for dtype
    _require(name)
    p = bench.make_problem(cell, 4, 3, 5, 6, dtype, seed=3)
    prepared = bench.peer(name).prepare(cell, p)
    expected = bench.expected_result(cell, p)
    assert set(prepared.result) == set(expected)
    assert {"h", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"} <= set(expected)
    bench.check_peer(name, prepared.result, expected)
    # float64 to far below the float32 tolerance: a peer on the wrong equations fails here
    if dtype == np.float64:
        for key, want in expected.items():
            np.testing.assert_allclose(prepared.result[key], want, rtol=1e-9, atol=1e-11,
                                       err_msg=f"{name} {cell} {key}")
    prepared.run()   # the timed unit runs after the prepared call


def test_jax_peer_leaves_x64_off():
    # float64 runs inside jax.enable_x64's context; the process-wide flag stays as it was
    _require("jax")
    import jax
    before = jax.config.jax_enable_x64
    p = bench.make_problem("rnn", 3, 2, 4, 5, np.float64)
    prepared = bench.peer("jax").prepare("rnn", p)
    hs, _ = prepared.run()
    assert hs.dtype == np.float64
    assert jax.config.jax_enable_x64 == before
    f32 = bench.peer("jax").prepare("rnn", bench.make_problem("rnn", 3, 2, 4, 5, np.float32))
    assert f32.result["h"].dtype == np.float32


@pytest.mark.parametrize("name", list(bench.PEERS))
def test_runner_takes_peer_names(name):
    _require(name)
    p = bench.make_problem("lstm", 3, 2, 4, 5, np.float64)
    assert bench.runner("lstm", name, p)() is not None


def test_check_peer_rejects_other_work():
    p = bench.make_problem("gru", 4, 2, 3, 5, np.float32)
    expected = bench.expected_result("gru", p)
    bench.check_peer("same", dict(expected), expected)
    off = dict(expected, dW_hh=expected["dW_hh"] * 1.01)
    with pytest.raises(bench.PeerMismatch, match="odd's dW_hh differs from fastbptt's at x"):
        bench.check_peer("odd", off, expected, where=" at x")
    with pytest.raises(bench.PeerMismatch, match="float64 .* fastbptt's float32"):
        bench.check_peer("wide", dict(expected, h=expected["h"].astype(np.float64)), expected)
    with pytest.raises(bench.PeerMismatch, match="returned no db_hh"):
        bench.check_peer("short", {k: v for k, v in expected.items() if k != "db_hh"},
                         expected)


def test_unknown_peer_names():
    with pytest.raises(ValueError, match="unknown peer 'gpu'; expected one of torch, jax"):
        bench.peer("gpu")
    with pytest.raises(ValueError, match="unknown peer 'gpu'"):
        bench.chosen_peers(["numba", "gpu"])


class _FakePeer:
    """A peer module stand-in: fastbptt's own result, scaled by `scale` (1: right),
    unavailable with `missing`, unable to run at more than one thread; its timed call is
    `run` (one that does nothing by default)."""

    def __init__(self, scale=1.0, missing=None, run=None):
        self.scale, self.missing, self.prepared = scale, missing, 0
        self.run = run or (lambda: None)

    def available(self):
        return bench.peers.Availability(self.missing is None, self.missing or "fake 1.0")

    def prepare(self, cell, problem, threads=1):
        if threads > 1:
            raise bench.PeerUnavailable("one thread only")
        self.prepared += 1
        result = {k: v * self.scale for k, v in bench.expected_result(cell, problem).items()}
        return bench.peers.Prepared(self.run, result)


@pytest.fixture
def fake_peers(monkeypatch):
    """Register peers by name: fake_peers(name=_FakePeer(...), ...)."""
    def register(**fakes):
        for name, fake in fakes.items():
            monkeypatch.setitem(bench.PEERS, name, name)
            monkeypatch.setitem(sys.modules, f"fastbptt.bench.peers.{name}", fake)
    return register


def test_measure_rows_checks_times_and_ranks_the_peers(fake_peers, monkeypatch):
    good, gone = _FakePeer(), _FakePeer(missing="not importable (no module)")
    fake_peers(good=good, gone=gone)
    rows = list(bench.measure_rows(["rnn"], [(3, 2, 4, 4)], ["float64"], threads=[1, 2],
                                   repeat=1, reference=False, roofline=False,
                                   peers=["good", "gone"]))
    assert good.prepared == 1 and len(rows) == 2          # checked, then timed, at 1 thread
    one, two = rows
    assert one["good_speedup"] == pytest.approx(one["good_ms"] / one["compiled_ms"])
    assert one["best_peer"] == "good" and one["best_peer_speedup"] == one["good_speedup"]
    assert "gone_ms" not in one                            # unavailable: no entries at all
    assert two["good_ms"] is None and two["good_skipped"] == "one thread only"
    assert two["best_peer"] is None and two["best_peer_speedup"] is None


def test_measure_rows_times_the_reference_apart_at_more_than_one_thread(monkeypatch):
    """The reference's spinning BLAS threads must not land on the others' timed calls."""
    groups = []
    real = bench.problems.time_interleaved

    def recording(runs, repeat=None, **kwargs):
        groups.append(sorted(runs))
        return real(runs, repeat, **kwargs)

    monkeypatch.setattr(bench.problems, "time_interleaved", recording)
    rows = list(bench.measure_rows(["rnn"], [(3, 2, 4, 4)], ["float64"], threads=[1, 2],
                                   repeat=1, roofline=True, peers=[], torch=False))
    assert groups == [["compiled", "reference", "roofline"],
                      ["compiled", "roofline"], ["reference"]]
    assert all(row["reference_ms"] > 0 and row["speedup"] > 0 for row in rows)


def test_measure_rows_refuses_a_peer_doing_other_work(fake_peers):
    fake_peers(wrong=_FakePeer(scale=1.5))
    with pytest.raises(bench.PeerMismatch, match="wrong's h differs .* at rnn 3,2,4,4"):
        list(bench.measure_rows(["rnn"], [(3, 2, 4, 4)], ["float32"], repeat=1,
                                reference=False, roofline=False, peers=["wrong"]))


def test_table_has_a_column_pair_per_peer_and_the_best_peer():
    row = {"shape": [3, 2, 4, 4], "dtype": "float32", "cell": "lstm", "threads": 2,
           "compiled_ms": 1.0, "compiled_gflops": 1.0, "torch_ms": 2.5, "torch_speedup": 2.5,
           "jax_ms": 1.25, "jax_speedup": 1.25, "numba_ms": None, "numba_speedup": None,
           "numba_skipped": "x", "best_peer": "jax", "best_peer_speedup": 1.25}
    lines = list(bench.table_lines([row], reference=False, peers=["torch", "jax", "numba"]))
    headings = [e.strip() for e in lines[0].strip("|").split("|")]
    assert headings == ["T,B,I,H", "dtype", "cell", "threads", "compiled ms", "torch ms",
                        "jax ms", "numba ms", "vs torch", "vs jax", "vs numba", "best peer",
                        "compiled GFLOP/s"]
    entries = [e.strip() for e in lines[2].strip("|").split("|")]
    assert entries[5:12] == ["2.500", "1.250", "-", "2.50x", "1.25x", "-", "jax 1.25x"]
    # torch=True alone is the table before --peers; no peer, no peer columns
    assert list(bench.table_lines([], reference=False, torch=True))[0] == \
        next(bench.table_lines([], reference=False, peers=["torch"]))
    assert "best peer" not in next(bench.table_lines([], reference=False))


def _bench_cli(capsys, *options):
    from fastbptt.app.cli import main
    status = main(["bench", "--cells", "rnn", "--shapes", "3,2,4", "--repeat", "1",
                   "--dtypes", "float64", "--threads", "1", "--no-roofline", *options])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_peers_columns_and_skip_notes(fake_peers, capsys):
    fake_peers(good=_FakePeer(), gone=_FakePeer(missing="not importable (nope)"))
    status, out, err = _bench_cli(capsys, "--peers", "good,gone,torch", "--no-torch")
    assert status == 0
    assert "Peer gone skipped: not importable (nope)" in out
    assert "Peers: fake 1.0" in out
    heading = next(line for line in out.splitlines() if line.startswith("| T,B,I,H"))
    assert "good ms" in heading and "vs good" in heading and "best peer" in heading
    assert "gone" not in heading and "torch" not in heading   # --no-torch: out of --peers


def test_cli_refuses_a_peer_doing_other_work(fake_peers, capsys):
    fake_peers(wrong=_FakePeer(scale=-1.0))
    status, _, err = _bench_cli(capsys, "--peers", "wrong")
    assert status == 1
    assert err.startswith("fastbptt bench: error: wrong's h differs from fastbptt's")


def test_cli_unknown_peer_is_a_one_line_error(capsys):
    from fastbptt.app.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--peers", "torch,gpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == ["fastbptt bench: error: argument --peers: unknown peer 'gpu'; "
                      "choose from torch, jax, numba"]
    assert "Traceback" not in err


def test_jax_peer_refuses_a_backend_it_did_not_start(tmp_path):
    # XLA reads its thread flags once: a JAX already running has threads the row can't know
    _require("jax")
    code = ("import jax.numpy as jnp, numpy as np\njnp.ones(2).block_until_ready()\n"
            "from fastbptt import bench\np = bench.make_problem('rnn', 2, 1, 3, 3, np.float32)\n"
            "try:\n    bench.peer('jax').prepare('rnn', p)\n"
            "except bench.PeerUnavailable as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "JAX's backend started before the peer could set its threads" in result.stdout


# ---------------------------------------------------------------- the allocator's state

# Faults of malloc + touch + free cycles of `blocks` blocks of 20 MB each, in a fresh
# process, after bench.harness.steady_allocator when argv[1] is "steady". One block: its
# second cycle reuses the heap only if the mmap threshold was raised past 20 MB before the
# first (else the first is mmapped and unmapped, and the second grows the heap, both fresh
# pages). Four blocks, 80 MB freed at the top of the heap: more than glibc's largest trim
# threshold (64 MiB), so the third cycle reuses them only if trimming is off.
_CYCLES = """
import ctypes, sys
from fastbptt.bench import harness
if sys.argv[1] == "steady":
    harness.steady_allocator()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 20 * 2**20

def cycle(blocks):
    before = harness.minor_faults()
    pointers = [libc.malloc(SIZE) for _ in range(blocks)]
    for p in pointers:
        ctypes.memset(p, 1, SIZE)
    for p in pointers:
        libc.free(p)
    return harness.minor_faults() - before

print(*[cycle(int(sys.argv[2])) for _ in range(3)])
"""


def _glibc_only():
    if not bench.harness._glibc():
        pytest.skip("steady_allocator changes glibc's malloc only")


def _cycle_faults(mode, blocks):
    result = subprocess.run([sys.executable, "-c", _CYCLES, mode, str(blocks)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [int(n) for n in result.stdout.split()]


@pytest.mark.parametrize("blocks, settled_from", [(1, 1), (4, 2)])
def test_steady_allocator_keeps_freed_blocks_for_the_next_call(blocks, settled_from):
    # settled_from: the first cycle (0-based) that the plain process still faults in, the
    # steady one no more (1: the raised mmap threshold; 2: trimming off)
    _glibc_only()
    pages = blocks * 20 * 2**20 // mmap.PAGESIZE
    plain, steady = _cycle_faults("plain", blocks), _cycle_faults("steady", blocks)
    assert plain[settled_from] > pages // 2, plain      # the premise: glibc gives them back
    assert all(n < pages // 100 for n in steady[1:]), steady
    assert steady[0] > pages // 2, steady                # the first cycle's pages are new


def test_steady_allocator_elsewhere_leaves_the_allocator_alone(monkeypatch):
    def no_such_name(name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(bench.harness.os, "confstr", no_such_name)
    assert bench.harness._glibc() is None
    assert bench.harness.steady_allocator() == "not glibc: left as it is"


def test_the_command_settles_the_allocator_first(allocator_calls, capsys):
    # conftest's stand-in records the call; the header names the state it returned
    status, out, _ = _bench_cli(capsys)
    assert status == 0 and allocator_calls == [True]
    assert "Allocator: left as it is (the test process)" in out.splitlines()


# ---------------------------------------------------------------- page faults per call

# Fewer faults than this a call is no fresh memory: 40 MiB is 20 faults even where
# transparent huge pages of 2 MiB back it (10,240 of 4 KiB pages here).
_FEW = 10


def _fresh_pages():
    """A run that writes 40 MiB of fresh memory each call: above any mmap threshold that
    glibc reaches by itself (32 MiB), so mapped afresh and given back every time."""
    return lambda: b"\1" * (40 * 2**20)


@pytest.mark.skipif(harness.resource is None, reason="no getrusage (Windows)")
def test_time_interleaved_counts_each_calls_page_faults():
    timings = bench.time_interleaved({"fresh": _fresh_pages(), "none": lambda: None},
                                     repeat=3, number={"fresh": 2, "none": 1})
    assert len(timings["fresh"].faults) == 3
    assert all(n >= 2 * _FEW for n in timings["fresh"].faults), timings["fresh"].faults
    assert all(n < _FEW for n in timings["none"].faults), timings["none"].faults


def test_no_getrusage_no_fault_counts(monkeypatch, fake_peers):
    monkeypatch.setattr(harness, "resource", None)
    assert bench.minor_faults() is None
    assert bench.time_interleaved({"a": lambda: None}, repeat=2)["a"].faults is None
    fake_peers(good=_FakePeer())
    row, = bench.measure_rows(["rnn"], [(3, 2, 4, 4)], ["float64"], repeat=1,
                              reference=False, roofline=False, peers=["good"])
    assert row["compiled_faults"] is None and row["good_faults_samples"] is None
    assert bench.fault_lines([row]) == []


@pytest.mark.skipif(harness.resource is None, reason="no getrusage (Windows)")
def test_rows_and_the_lines_below_the_table_carry_the_faults(fake_peers, capsys):
    fake_peers(fresh=_FakePeer(run=_fresh_pages()))
    rows = list(bench.measure_rows(["rnn"], [(3, 2, 4, 4)], ["float64"], repeat=3,
                                   reference=False, roofline=False, peers=["fresh"]))
    row, = rows
    assert row["fresh_faults"] >= 2 * _FEW and len(row["fresh_faults_samples"]) == 3
    assert row["compiled_faults"] < _FEW
    heading, line = bench.fault_lines(rows)
    assert heading.startswith("Minor page faults per timed call (median)")
    assert line.startswith("- 3,2,4,4 float64 rnn, 1 thread: fresh ")
    # and the command prints them below its table
    fake_peers(fresh=_FakePeer(run=_fresh_pages()))
    status, out, _ = _bench_cli(capsys, "--peers", "fresh")
    assert status == 0
    below = out.split("\n\n")[-1].splitlines()
    assert below[0] == heading and below[1].startswith("- 3,2,4,4 float64 rnn, 1 thread: fresh ")


def test_fault_lines_name_only_the_backends_that_took_any():
    def row(cell, **faults):
        return {"shape": [3, 2, 4, 4], "dtype": "float32", "cell": cell, "threads": 2,
                **{f"{name}_faults": n for name, n in faults.items()}}

    assert bench.fault_lines([row("rnn", compiled=0, torch=0.5)]) == [
        "Minor page faults per timed call (median): none, in every backend and row"]
    assert bench.fault_lines([row("rnn", compiled=0, torch=12428, jax=None),
                              row("gru", compiled=0, torch=0)]) == [
        "Minor page faults per timed call (median), where a backend took any (the others "
        "took none):",
        "- 3,2,4,4 float32 rnn, 2 threads: torch 12,428"]
