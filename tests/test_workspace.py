"""The recycled buffers of the cells (fastbptt.cells.workspace): reuse never changes a result,
never hands out memory an array still uses, stays private to a thread and within its
limit."""
import threading

import numpy as np
import pytest

import fastbptt
from fastbptt.cells import workspace as _workspace
from fastbptt.cells.spec import SPECS

CELLS = {name: (getattr(fastbptt, spec.forward_name), getattr(fastbptt, spec.backward_name),
                spec.gates)
         for name, spec in SPECS.items()}


def problem(cell, T, B, H, seed=0, dtype=np.float64):
    G = CELLS[cell][2]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, H)).astype(dtype)
    W_ih = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype)
    W_hh = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype)
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    return x, W_ih, W_hh, dh


@pytest.fixture(autouse=True)
def fresh_workspace(monkeypatch):
    # every array through the pool, however small, so small problems exercise it
    monkeypatch.setattr(_workspace, "MIN_BYTES", 0)
    _workspace.release_workspace()
    previous = _workspace.set_workspace_limit(_workspace.DEFAULT_LIMIT)
    yield
    _workspace.set_workspace_limit(previous)
    _workspace.release_workspace()


def run(cell, T, B, H, seed=0, dtype=np.float64, **options):
    """(h, cache, grads) of one forward+backward."""
    forward, backward, _ = CELLS[cell]
    x, W_ih, W_hh, dh = problem(cell, T, B, H, seed, dtype)
    if options.get("batch_first"):
        x, dh = x.transpose(1, 0, 2).copy(), dh.transpose(1, 0, 2).copy()
    states = (None,) * len(SPECS[cell].states)
    h, cache = forward(x, *states, W_ih, W_hh, **options)
    return h, cache, backward(dh, cache)


OPTIONS = [{}, {"batch_first": True}, {"lengths": [5, 2, 0, 4, 5, 1]}]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("B", [1, 3, 6])   # GEMV rows, plain and transposed per-step GEMM
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "batch_first", "lengths"])
def test_recycled_buffers_do_not_change_results(cell, B, options):
    options = {k: (v[:B] if k == "lengths" else v) for k, v in options.items()}
    _workspace.set_workspace_limit(0)
    h0, _, expected = run(cell, 5, B, 8, **options)
    assert fastbptt.workspace_bytes() == 0
    _workspace.set_workspace_limit(_workspace.DEFAULT_LIMIT)
    for _ in range(3):   # the second and third calls run on recycled buffers
        h, _, got = run(cell, 5, B, 8, **options)
        np.testing.assert_array_equal(h, h0)
        for a, e in zip(got, expected):
            np.testing.assert_array_equal(a, e)
    assert fastbptt.workspace_bytes() > 0


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_arrays_in_use_are_never_handed_out_again(cell):
    # Results and caches still held while later calls run (same shapes, other numbers)
    # must keep their values and share no memory with anything handed out later.
    forward, backward, _ = CELLS[cell]
    h1, cache1, grads1 = run(cell, 6, 5, 8, seed=1)
    kept = [h1, *(g for g in grads1 if g is not None)]
    copies = [a.copy() for a in kept]
    x, W_ih, W_hh, dh = problem(cell, 6, 5, 8, seed=1)
    expected_again = backward(dh, cache1)      # the cache is intact so far
    h2, cache2, grads2 = run(cell, 6, 5, 8, seed=2)
    h3, _, grads3 = run(cell, 6, 5, 8, seed=3)
    for a, c in zip(kept, copies):
        np.testing.assert_array_equal(a, c)
        for later in (h2, h3, *grads2, *grads3):
            assert later is None or not np.shares_memory(a, later)
    # and cache1, held through all that, still gives the same gradients
    for a, e in zip(backward(dh, cache1), expected_again):
        np.testing.assert_array_equal(a, e)


def test_free_buffers_are_reused_not_added():
    run("lstm", 10, 6, 16)          # everything it returned is dropped at once
    kept = fastbptt.workspace_bytes()
    assert kept > 0
    for _ in range(3):
        run("lstm", 10, 6, 16)
    assert fastbptt.workspace_bytes() == kept


def test_limit_bounds_what_is_kept():
    _workspace.set_workspace_limit(20_000)
    expected = run("lstm", 20, 3, 16)[2]
    held = [run("lstm", 20, 3, 16) for _ in range(3)]   # in use: the pool must not grow
    assert fastbptt.workspace_bytes() <= 20_000
    for _, _, grads in held:
        np.testing.assert_array_equal(grads.dW_hh, expected.dW_hh)


def test_lowering_the_limit_frees_and_release_frees():
    run("gru", 10, 6, 16)
    assert fastbptt.workspace_bytes() > 0
    assert fastbptt.set_workspace_limit(10) == _workspace.DEFAULT_LIMIT
    assert fastbptt.workspace_bytes() == 0
    fastbptt.set_workspace_limit(_workspace.DEFAULT_LIMIT)
    run("gru", 10, 6, 16)
    fastbptt.release_workspace()
    assert fastbptt.workspace_bytes() == 0


def test_release_frees_the_kept_packed_weights():
    """The packed copies of W_hh kept between calls go with release_workspace()."""
    from fastbptt._kernels import step_packing
    from fastbptt.cells.spec import step_form
    from fastbptt.runtime.packing import packer

    T, B, H = 10, 6, 16
    assert step_form("gru", B, H, np.float64, packer(), T) == "packed"
    run("gru", T, B, H)
    assert step_packing.kept_weight_bytes() >= 3 * H * H * 8   # W_hh (3H x H), packed
    fastbptt.release_workspace()
    assert step_packing.kept_weight_bytes() == 0
    run("gru", T, B, H)
    assert step_packing.kept_weight_bytes() > 0


def test_small_arrays_are_plain(monkeypatch):
    monkeypatch.setattr(_workspace, "MIN_BYTES", 1 << 20)
    run("rnn", 5, 3, 8)
    assert fastbptt.workspace_bytes() == 0
    big = _workspace.empty((1 << 18,), np.dtype(np.float32))   # 1 MiB
    assert big.base is not None and fastbptt.workspace_bytes() == 1 << 20


def test_buffers_are_private_to_a_thread():
    held = run("lstm", 5, 6, 8)
    mine = {buf.ctypes.data for buf in _workspace._buffers()}
    theirs = set()

    def work():
        run("lstm", 5, 6, 8)
        theirs.update(buf.ctypes.data for buf in _workspace._buffers())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert theirs and held and not mine & theirs


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_bad_limit_is_refused(bad):
    with pytest.raises(ValueError, match="nbytes must be a non-negative int"):
        fastbptt.set_workspace_limit(bad)


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_copy_is_a_c_contiguous_copy(monkeypatch, large):
    monkeypatch.setattr(_workspace, "MIN_BYTES", 64 if large else 1 << 20)
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4).transpose(1, 0, 2)
    out = _workspace.copy(a)
    np.testing.assert_array_equal(out, a)
    assert out.flags.c_contiguous and out.dtype == a.dtype
    assert not np.shares_memory(out, a)
    assert (fastbptt.workspace_bytes() > 0) == large   # large copies come from the pool
