"""fastbptt.distributed in real multi-rank jobs: mpiexec -n 2 and -n 4 (oversubscribed on a
2-core machine) on the small scripts in tests/mpi_jobs/, each with a timeout.

The mpiexec is the one the `mpich` wheel of the test extra installs (found through the
wheel's own file list, so a venv, a --user install or a base interpreter all work), else
the one beside sys.executable, else the first on PATH. Without one the tests FAIL with
the install command, rather than skip: the test extra promises them everywhere but on
Windows, where the mpich wheel does not exist.
"""
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

JOBS = Path(__file__).parent / "mpi_jobs"
if sys.platform == "win32":
    pytest.skip("the mpich wheel of the test extra is not built for Windows",
                allow_module_level=True)


def find_mpiexec():
    try:
        files = importlib.metadata.distribution("mpich").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == "mpiexec":
            path = Path(f.locate()).resolve()
            if path.exists():
                return str(path)
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


@pytest.fixture(scope="module")
def mpiexec():
    path = find_mpiexec()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        pytest.fail('no mpiexec or mpi4py: pip install ".[test]" installs mpi4py and the '
                    'mpich wheel (or see docs/guide/distributed.md for a cluster\'s own MPI)')
    return path


def run_job(mpiexec, n, script, *args, timeout=240):
    """Run `mpiexec -n n python JOBS/script args`; see run_mpi."""
    return run_mpi(mpiexec, n, [str(JOBS / script), *args], timeout)


def run_mpi(mpiexec, n, python_args, timeout=240):
    """Run `mpiexec -n n python python_args`; returns the CompletedProcess and the
    seconds it took. One thread per rank, and -n larger than the cores is allowed (MPICH's
    Hydra oversubscribes without a flag). On a timeout the job is ended (SIGINT to
    mpiexec, which Hydra forwards to the ranks, then SIGKILL to its whole session) so no
    rank outlives the test, and subprocess.TimeoutExpired is raised."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.Popen([mpiexec, "-n", str(n), sys.executable, *python_args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise
    seconds = time.perf_counter() - start
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seconds


@pytest.mark.parametrize("n", [2, 4])
def test_data_parallel_equals_one_process_on_the_combined_batch(mpiexec, n):
    # 24 combinations (2 tasks x 3 cells x 4 optimizers), parameters to rel 1e-12 after
    # every run, replicas bit-identical after every step (asserted inside the job)
    first, _ = run_job(mpiexec, n, "train_equivalence.py")
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["size"] == n and result["combinations"] == 24
    assert result["max_rel_diff"] <= 1e-12
    if n == 2:
        # the same job again: bit-identical final parameters
        again, _ = run_job(mpiexec, n, "train_equivalence.py")
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout.strip().splitlines()[-1]) == result


def test_exception_on_one_rank_aborts_the_job(mpiexec):
    proc, seconds = run_job(mpiexec, 2, "fail_fast.py", "raise", timeout=60)
    assert proc.returncode != 0
    assert "deliberate failure on rank 1" in proc.stderr
    assert "aborting all 2 ranks" in proc.stderr
    assert "unreachable" not in proc.stdout
    assert seconds < 10


def test_sigkill_of_one_rank_ends_the_job(mpiexec):
    proc, seconds = run_job(mpiexec, 2, "fail_fast.py", "kill", timeout=60)
    assert proc.returncode != 0
    assert "unreachable" not in proc.stdout
    assert seconds < 10


def test_without_init_an_exception_leaves_the_others_waiting(mpiexec):
    # What the abort hook is for: the same failure without init() hangs in the barrier.
    with pytest.raises(subprocess.TimeoutExpired):
        run_job(mpiexec, 2, "fail_fast.py", "raise-noinit", timeout=6)


DEMO = ["-m", "fastbptt", "demo", "--steps", "6", "--hidden", "16", "--seq-len", "8",
        "--dtype", "float64", "--sample-every", "3", "--sample-length", "10",
        "--threads", "1"]


def test_demo_under_mpi_trains_the_global_batch_and_talks_on_rank_0(mpiexec, tmp_path):
    checkpoint = tmp_path / "demo.npz"
    proc, _ = run_mpi(mpiexec, 2, DEMO + ["--batch", "4", "--checkpoint", str(checkpoint)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("unigram baseline:") == 1 and out.count("trained 6 steps") == 1
    assert "MPI: 2 ranks, 2 of the 4 streams each" in out
    assert out.count("--- sample at step") == 2
    assert out.count("checkpoint: ") == 1 and checkpoint.exists()
    # the same model trained by one process on all 4 streams: the same losses
    single = subprocess.run([sys.executable, *DEMO, "--batch", "4", "--checkpoint", ""],
                            capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]
    loss_line = [line for line in single.stdout.splitlines() if line.startswith("loss: ")]
    assert loss_line and loss_line[0] in out.splitlines()


def test_demo_under_mpi_refuses_an_indivisible_batch(mpiexec):
    proc, _ = run_mpi(mpiexec, 2, DEMO + ["--batch", "5", "--checkpoint", ""])
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--batch 5 is not divisible by the 2 MPI ranks" in lines[0]
    assert "Traceback" not in proc.stderr


def test_demo_error_on_the_ranks_ends_the_job(mpiexec, tmp_path):
    proc, seconds = run_mpi(mpiexec, 2, DEMO + ["--text", str(tmp_path / "missing.txt")],
                            timeout=60)
    assert proc.returncode != 0
    assert "fastbptt demo: error on rank " in proc.stderr and "missing.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert seconds < 20


def readme_mpi_example():
    """The user guide's train.py (docs/guide/distributed.md, "Many processes and
    machines"): test_docs.py runs the docs' blocks in-process; this one is an MPI script,
    run here."""
    page = Path(__file__).resolve().parents[1] / "docs" / "guide" / "distributed.md"
    if not page.exists():
        pytest.skip("docs/ is not in this tree")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
              if b.startswith("# train.py: mpiexec")]
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.parametrize("n", [1, 2])
def test_readme_mpi_example_runs(mpiexec, tmp_path, n):
    script = tmp_path / "train.py"
    script.write_text(readme_mpi_example())
    proc, _ = run_mpi(mpiexec, n, [str(script)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("epoch ") for line in lines)
    assert lines[-1].endswith("over 160 samples")   # a window: 20 steps x all 8 streams


def _json_objects(text):
    """The JSON objects the ranks printed, however the launcher interleaved their lines
    (two ranks' writes can reach the shared stdout back to back on one line)."""
    decoder, objects, i = json.JSONDecoder(), [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return objects
        obj, i = decoder.raw_decode(text, i)
        objects.append(obj)


def test_replica_and_layout_checks_agree_on_every_rank(mpiexec):
    proc, _ = run_job(mpiexec, 2, "collective_checks.py", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = sorted(_json_objects(proc.stdout), key=lambda s: s["rank"])
    assert [s["rank"] for s in seen] == [0, 1]
    for s in seen:
        assert (s["same"], s["one_bit"], s["restored"]) == (True, False, True)
        for name in ("shape", "key"):
            for what in ("broadcast", "averager", "optimizer"):
                assert s[f"{name}-{what}"] is True, (s["rank"], name, what)
            assert s[f"{name}-unchanged"]
