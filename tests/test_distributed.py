"""fastbptt.distributed in one process: the import contract, launch detection, the
sharding arithmetic, the BLAS-thread rule, and the API on a single rank (MPI's singleton
COMM_WORLD, size 1) with its bad-input errors. The multi-rank behaviour is in
test_distributed_mpi.py, under mpiexec."""
import subprocess
import sys

import numpy as np
import pytest

import fastbptt
from fastbptt.runtime.launch import launched_world

mpi4py = pytest.importorskip("mpi4py", reason="mpi4py is in the test extra")
from fastbptt import distributed as dist  # noqa: E402
from fastbptt.distributed.runtime import default_blas_threads  # noqa: E402


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_import_fastbptt_does_not_import_mpi4py():
    proc = python("import sys, fastbptt, fastbptt.app.demo, fastbptt.app.cli; "
                  "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    assert proc.returncode == 0, proc.stderr


def test_import_without_mpi4py_names_the_extra():
    proc = python("import sys; sys.modules['mpi4py'] = None; import fastbptt.distributed")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and 'pip install "fastbptt[distributed]"' in last


@pytest.mark.parametrize("env, expected", [
    ({}, (0, 1)),
    ({"PMI_SIZE": "4", "PMI_RANK": "2"}, (2, 4)),
    ({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "1"}, (1, 3)),
    ({"MV2_COMM_WORLD_SIZE": "2", "MV2_COMM_WORLD_RANK": "1"}, (1, 2)),
    ({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5"}, (5, 8)),
    # a batch script is one process even in an allocation of several tasks
    ({"SLURM_STEP_ID": "batch", "SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "0"}, (0, 1)),
    ({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}, (0, 1)),
    ({"PMI_SIZE": "1", "PMI_RANK": "0"}, (0, 1)),
    ({"PMI_SIZE": "x", "PMI_RANK": "0"}, (0, 1)),          # garbage: not a launch
    ({"PMI_SIZE": "2", "PMI_RANK": "7"}, (0, 1)),
])
def test_launched_world(env, expected):
    assert launched_world(env) == expected


@pytest.mark.parametrize("n, size", [(1, 1), (5, 2), (8, 4), (7, 3), (128, 2), (3, 3)])
def test_stream_slice_covers_every_stream_once(n, size):
    slices = [dist.stream_slice(n, r, size) for r in range(size)]
    covered = np.concatenate([np.arange(n)[s] for s in slices])
    np.testing.assert_array_equal(covered, np.arange(n))
    lengths = [s.stop - s.start for s in slices]
    assert max(lengths) - min(lengths) <= 1 and min(lengths) >= 1


def test_stream_slice_bad_input():
    with pytest.raises(ValueError, match="at least one whole stream"):
        dist.stream_slice(3, 0, 4)
    with pytest.raises(ValueError, match="divide evenly"):
        dist.stream_slice(5, 0, 2, even=True)
    with pytest.raises(ValueError, match="rank must be < size"):
        dist.stream_slice(8, 4, 4)
    with pytest.raises(TypeError, match="n_streams must be an int"):
        dist.stream_slice(8.0, 0, 2)
    with pytest.raises(TypeError, match="rank must be an int"):
        dist.stream_slice(8, True, 2)


@pytest.mark.parametrize("n, batch, size", [(11, 4, 4), (11, 4, 2), (10, 5, 3), (3, 8, 2),
                                            (12, 4, 4)])
def test_minibatch_shards_split_every_minibatch(n, batch, size):
    order = np.random.default_rng(0).permutation(n)
    per_rank = [dist.minibatch_shards(n, batch, r, size, order=order) for r in range(size)]
    whole = dist.minibatch_shards(n, batch, 0, 1, order=order)
    assert all(len(shards) == len(whole) == -(-n // batch) for shards in per_rank)
    for j, minibatch in enumerate(whole):
        np.testing.assert_array_equal(minibatch, order[j * batch:(j + 1) * batch])
        pieces = [shards[j] for shards in per_rank]
        np.testing.assert_array_equal(np.concatenate(pieces), minibatch)
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
        assert all(p.dtype == np.int64 for p in pieces)


def test_minibatch_shards_last_shard_may_be_empty():
    shards = dist.minibatch_shards(11, 4, 3, 4)
    assert [len(s) for s in shards] == [1, 1, 0]


def test_minibatch_shards_bad_order():
    with pytest.raises(ValueError, match="permutation"):
        dist.minibatch_shards(4, 2, 0, 2, order=[0, 1, 1, 3])
    with pytest.raises(ValueError, match="permutation"):
        dist.minibatch_shards(4, 2, 0, 2, order=np.arange(5))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        dist.minibatch_shards(4, 0, 0, 2)


@pytest.mark.parametrize("cores, local, affinity, expected", [
    (2, 1, None, 2), (2, 2, None, 1), (2, 4, None, 1), (32, 4, None, 8), (32, 4, 2, 2)])
def test_default_blas_threads(cores, local, affinity, expected):
    assert default_blas_threads(local, cpu_count=cores, affinity=affinity or cores) == expected


# ---------------------------------------------------------------- one rank

def model_params(dtype=np.float64, seed=0):
    layer = fastbptt.LSTM(3, 4, dtype=dtype, seed=seed)
    params = dict(layer.params)
    params["head.weight"] = np.random.default_rng(seed).normal(size=(5, 4)).astype(dtype)
    return params


def random_grads(params, seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=p.shape).astype(p.dtype) for k, p in params.items()}


def test_init_on_one_rank():
    # no abort hook in the test process (the hook is tested in real jobs) and no BLAS limit
    ctx = dist.init(threads=None, abort_on_error=False)
    assert (ctx.rank, ctx.size, ctx.local_rank, ctx.local_size) == (0, 1, 0, 1)
    assert ctx.is_root and ctx.blas_threads is None
    assert dist.init(threads=None, abort_on_error=False).comm is ctx.comm
    assert sys.excepthook is sys.__excepthook__ or "abort" not in sys.excepthook.__name__


@pytest.mark.parametrize("kwargs, error, match", [
    ({"comm": "world"}, TypeError, "intracommunicator"),
    ({"threads": 0}, ValueError, "threads must be"),
    ({"threads": "all"}, ValueError, "threads must be"),
    ({"abort_on_error": 1}, TypeError, "abort_on_error"),
])
def test_init_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        dist.init(**kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_average_on_one_rank_is_the_gradient(dtype):
    params = model_params(dtype)
    grads = random_grads(params)
    before = {k: g.copy() for k, g in grads.items()}
    averager = dist.GradientAverager(params)
    result = averager.average(grads, loss=2.5, count=7)
    assert result.count == 7 and result.loss == pytest.approx(2.5)
    for k, g in grads.items():
        assert result.grads[k].dtype == dtype
        np.testing.assert_allclose(result.grads[k], g, rtol=1e-6 if dtype == np.float32
                                   else 1e-15)
        # the caller's gradients: read, never written
        np.testing.assert_array_equal(g, before[k])
    # the result lives in the preallocated buffer: the next call reuses it
    again = averager.average(grads, loss=1.0, count=3)
    assert all(again.grads[k] is result.grads[k] for k in grads)
    assert averager.nbytes == sum(p.nbytes for p in params.values()) + 2 * np.dtype(dtype).itemsize


def test_average_mixed_dtypes_keeps_each_dtype():
    params = {"a": np.zeros(3, np.float32), "b": np.zeros((2, 2), np.float64)}
    grads = {"a": np.ones(3, np.float32), "b": np.full((2, 2), 2.0)}
    result = dist.GradientAverager(params).average(grads, loss=1.0, count=2)
    assert result.grads["a"].dtype == np.float32 and result.grads["b"].dtype == np.float64
    np.testing.assert_array_equal(result.grads["b"], grads["b"])


def test_average_bad_input():
    params = model_params()
    averager = dist.GradientAverager(params)
    grads = random_grads(params)
    with pytest.raises(ValueError, match="no samples on any rank"):
        averager.average(None, count=0)
    with pytest.raises(ValueError, match="only on a rank with count=0"):
        averager.average(None, count=3)
    with pytest.raises(ValueError, match="count must be a finite number >= 0"):
        averager.average(grads, count=-1)
    with pytest.raises(TypeError, match="count must be a number"):
        averager.average(grads, count="3")
    with pytest.raises(TypeError, match="loss must be a real number"):
        averager.average(grads, loss=None)
    with pytest.raises(ValueError, match="missing \\['head.weight'\\]"):
        averager.average({k: g for k, g in grads.items() if k != "head.weight"})
    bad = dict(grads, **{"head.weight": grads["head.weight"].astype(np.float32)})
    with pytest.raises(ValueError, match="head.weight.*dtype float64"):
        averager.average(bad)
    with pytest.raises(TypeError, match="params must be a dict"):
        dist.GradientAverager([1, 2])
    with pytest.raises(TypeError, match="float32 or float64"):
        dist.GradientAverager({"a": np.zeros(2, np.int64)})


@pytest.mark.parametrize("make", [lambda p: fastbptt.SGD(p, lr=0.1),
                                  lambda p: fastbptt.Adam(p, lr=0.01)])
def test_distributed_optimizer_on_one_rank_is_clip_then_step(make):
    params, ref_params = model_params(), model_params()
    opt, ref = dist.DistributedOptimizer(make(params), clip=0.5), make(ref_params)
    for seed in range(3):
        grads = random_grads(params, seed)
        kept = {k: g.copy() for k, g in grads.items()}
        result = opt.step(grads, loss=0.25, count=4)
        ref_grads = {k: g.copy() for k, g in grads.items()}
        norm = fastbptt.clip_grad_norm(ref_grads, 0.5)
        ref.step(ref_grads)
        assert result.grad_norm == pytest.approx(norm, rel=1e-14) and norm > 0.5
        for k, g in grads.items():
            np.testing.assert_array_equal(g, kept[k])
            np.testing.assert_allclose(params[k], ref_params[k], rtol=1e-14, atol=1e-15)
    assert opt.state_dict()["optimizer"] == ref.state_dict()["optimizer"]
    assert dist.check_replicas(params)


def test_distributed_optimizer_bad_input():
    params = model_params()
    with pytest.raises(TypeError, match="fastbptt optimizer"):
        dist.DistributedOptimizer(params)
    with pytest.raises(ValueError, match="clip must be a finite number > 0"):
        dist.DistributedOptimizer(fastbptt.SGD(params), clip=0)
    with pytest.raises(TypeError, match="clip must be a positive number"):
        dist.DistributedOptimizer(fastbptt.SGD(params), clip="1")


def test_broadcast_on_one_rank_keeps_the_arrays():
    params = model_params()
    kept = {k: p.copy() for k, p in params.items()}
    strided = {"w": np.arange(12.0).reshape(3, 4)[:, ::2]}
    assert dist.broadcast_params(params) is params
    dist.broadcast_params(strided)
    for k in params:
        np.testing.assert_array_equal(params[k], kept[k])
    opt = fastbptt.Adam(params)
    opt.step(random_grads(params))
    state = opt.state_dict()
    dist.broadcast_optimizer_state(opt)
    assert opt.step_count == 1
    np.testing.assert_array_equal(opt.state_dict()["exp_avg.head.weight"],
                                  state["exp_avg.head.weight"])
    with pytest.raises(ValueError, match="root must be a rank in \\[0, 1\\)"):
        dist.broadcast_params(params, root=1)
    with pytest.raises(TypeError, match="state_dict"):
        dist.broadcast_optimizer_state(params)
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        dist.broadcast_params({"a": readonly})


def test_replica_checksum_sees_every_bit():
    params = model_params()
    crc = dist.replica_checksum(params)
    assert crc == dist.replica_checksum({k: p.copy() for k, p in params.items()})
    flipped = {k: p.copy() for k, p in params.items()}
    flipped["head.weight"].view(np.uint64)[0, 0] ^= 1      # the last bit of one number
    assert dist.replica_checksum(flipped) != crc
    renamed = {("x" + k): p for k, p in params.items()}
    assert dist.replica_checksum(renamed) != crc
    assert dist.check_replicas(params)
