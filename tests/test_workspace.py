"""The backward passes' kept scratch buffers (fastbptt._workspace): reuse never changes a
result, never aliases a returned array, stays private to a thread and within its limit."""
import threading

import numpy as np
import pytest

import fastbptt
from fastbptt import _workspace

CELLS = {
    "rnn": (fastbptt.rnn_forward, fastbptt.rnn_backward, 1),
    "lstm": (fastbptt.lstm_forward, fastbptt.lstm_backward, 4),
    "gru": (fastbptt.gru_forward, fastbptt.gru_backward, 3),
}


def problem(cell, T, B, H, seed=0, dtype=np.float64):
    G = CELLS[cell][2]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, H)).astype(dtype)
    W_ih = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype)
    W_hh = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype)
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    return x, W_ih, W_hh, dh


def grads(cell, T, B, H, seed=0, dtype=np.float64):
    forward, backward, _ = CELLS[cell]
    x, W_ih, W_hh, dh = problem(cell, T, B, H, seed, dtype)
    _, cache = forward(x, None, *(() if cell != "lstm" else (None,)), W_ih, W_hh)
    return backward(dh, cache)


@pytest.fixture(autouse=True)
def fresh_workspace():
    _workspace.release_workspace()
    previous = _workspace.set_workspace_limit(_workspace.DEFAULT_LIMIT)
    yield
    _workspace.set_workspace_limit(previous)
    _workspace.release_workspace()


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("B", [1, 3, 6])   # GEMV rows, plain and transposed per-step GEMM
def test_kept_buffers_do_not_change_results(cell, B):
    _workspace.set_workspace_limit(0)
    expected = grads(cell, 5, B, 8)
    assert fastbptt.workspace_bytes() == 0
    _workspace.set_workspace_limit(_workspace.DEFAULT_LIMIT)
    first = grads(cell, 5, B, 8)
    assert fastbptt.workspace_bytes() > 0
    second = grads(cell, 5, B, 8)   # runs on the kept buffers
    for a, b, e in zip(first, second, expected):
        np.testing.assert_array_equal(a, e)
        np.testing.assert_array_equal(b, e)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_returned_gradients_survive_later_calls(cell):
    # A later backward (other sizes, other numbers) reuses the buffers; gradients already
    # returned must not be views of them.
    first = grads(cell, 6, 5, 8, seed=1)
    copies = [None if g is None else g.copy() for g in first]
    grads(cell, 4, 5, 8, seed=2)
    grads(cell, 9, 7, 16, seed=3)
    for g, c in zip(first, copies):
        if g is not None:
            np.testing.assert_array_equal(g, c)
            for buf in _workspace._pool().values():
                assert not np.shares_memory(g, buf)


def test_buffers_grow_and_are_shared_across_cells_and_dtypes():
    grads("rnn", 4, 3, 8)
    small = fastbptt.workspace_bytes()
    grads("lstm", 4, 3, 8, dtype=np.float32)
    assert fastbptt.workspace_bytes() > small
    assert set(_workspace._pool()) <= {"gate_grads", "W_hhT"}


def test_limit_bounds_what_is_kept():
    _workspace.set_workspace_limit(1000)
    expected = grads("lstm", 20, 3, 16)   # dz alone is 20*3*64*8 bytes > 1000
    assert fastbptt.workspace_bytes() <= 1000
    _workspace.set_workspace_limit(0)
    np.testing.assert_array_equal(grads("lstm", 20, 3, 16).dW_hh, expected.dW_hh)
    assert fastbptt.workspace_bytes() == 0


def test_lowering_the_limit_frees_and_release_frees():
    grads("gru", 10, 6, 16)
    assert fastbptt.workspace_bytes() > 0
    assert fastbptt.set_workspace_limit(10) == _workspace.DEFAULT_LIMIT
    assert fastbptt.workspace_bytes() == 0
    fastbptt.set_workspace_limit(_workspace.DEFAULT_LIMIT)
    grads("gru", 10, 6, 16)
    fastbptt.release_workspace()
    assert fastbptt.workspace_bytes() == 0


def test_buffers_are_private_to_a_thread():
    grads("lstm", 5, 6, 8)
    mine = {role: buf.ctypes.data for role, buf in _workspace._pool().items()}
    theirs = {}

    def work():
        grads("lstm", 5, 6, 8)
        theirs.update({role: buf.ctypes.data for role, buf in _workspace._pool().items()})

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert theirs and not set(mine.values()) & set(theirs.values())


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_bad_limit_is_refused(bad):
    with pytest.raises(ValueError, match="nbytes must be a non-negative int"):
        fastbptt.set_workspace_limit(bad)
