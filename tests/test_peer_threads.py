"""The benchmark's peers run at their row's thread count (fastbptt.bench.peers), checked
without timing: torch's intra-op pool holds the row's count, the row that first imports
torch included (the harness's thread_limit cannot set a torch it has not seen), and
JAX's backend, started with the calling thread's CPU affinity narrowed, leaves the
affinity as it found it, so that threads started afterwards (torch's pool, the batch
split's workers) may run on every CPU. Each case runs in a new process: both are about
what happens when torch or JAX starts."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2 or not hasattr(os, "sched_getaffinity"),
                                reason="needs two CPUs and sched_getaffinity")


def _has(package):
    return importlib.util.find_spec(package) is not None


def _run(code):
    """What a new Python process running code printed, as words."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(not _has("torch"), reason="torch is not installed")
def test_torch_runs_at_the_rows_thread_count_from_its_first_row():
    counts = _run("""
        from fastbptt import bench
        from fastbptt.bench.harness import thread_limit
        problem = bench.make_problem("rnn", 3, 2, 4, 5, "float32")
        for n in (1, 2, 1):
            with thread_limit(n):
                bench.peer("torch").prepare("rnn", problem, threads=n).run()
                import torch
                print(torch.get_num_threads())
    """)
    assert counts == ["1", "2", "1"]


@pytest.mark.skipif(not _has("jax"), reason="jax is not installed")
def test_jax_start_restores_the_affinity_for_later_threads():
    seen = _run("""
        import os, threading
        from fastbptt import bench
        from fastbptt.bench.harness import thread_limit
        before = sorted(os.sched_getaffinity(0))
        problem = bench.make_problem("rnn", 3, 2, 4, 5, "float32")
        with thread_limit(1):
            bench.peer("jax").prepare("rnn", problem, threads=1).run()
        later = []
        thread = threading.Thread(target=lambda: later.append(sorted(os.sched_getaffinity(0))))
        thread.start()
        thread.join()
        print(len(before), sorted(os.sched_getaffinity(0)) == before, later[0] == before)
    """)
    assert int(seen[0]) >= 2 and seen[1:] == ["True", "True"]
