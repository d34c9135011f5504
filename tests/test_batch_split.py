"""The batch split (fastbptt.cells.batch_split): with 2 BLAS threads and B >= 2, a large
enough call runs its rows as contiguous blocks in two Python threads.

Held here: which calls split (blocks()), and for those that do, in every cell, dtype,
layout, with lengths and with checkpoint: agreement with the reference and with the
one-thread path to the per-dtype tolerance (not bit for bit: the blocks' products run
over fewer rows and the weight gradients are summed per block), bit-identical results
from run to run, float32 in and out, finite differences in float64, the blocks really
running in two threads, and bad input refused as before. MIN_SPLIT_FLOPS is set to 0 so
that small problems split (the threshold itself is a speed choice, not a property).
"""
import os
import signal
import threading

import numpy as np
import pytest

import fastbptt
from _cells import assert_matches_finite_differences, final_states, make_problem
from _helpers import assert_close, tol_for
from fastbptt._kernels import blas
from fastbptt.cells import batch_split, driver
from fastbptt.cells.batch_split import SplitCache
from fastbptt.cells.checkpoint import CheckpointCache
from fastbptt.cells.spec import SPECS

pytestmark = pytest.mark.skipif(not blas.has_thread_control(),
                                reason="the split needs control of scipy's BLAS threads")

CELLS = list(SPECS)


@pytest.fixture
def split_all(monkeypatch):
    """Every problem with B >= 2 splits at 2 threads."""
    monkeypatch.setattr(batch_split, "MIN_SPLIT_FLOPS", 0)


def _args(T, B, I, H, cell="lstm"):
    p = make_problem(SPECS[cell], T, B, I, H)
    spec = SPECS[cell]
    from fastbptt.cells.args import check_forward_args
    return check_forward_args(spec, p["x"], [p[s] for s in spec.initial_states], p["W_ih"],
                              p["W_hh"], p["b_ih"], p["b_hh"], False)


def _flops(args):
    return 2 * args.T * args.B * (args.I + args.H) * args.G * args.H


def test_blocks_follow_the_policy(monkeypatch):
    big = _args(30, 8, 40, 48)
    # the threshold is a speed choice; the rule around it is what is held here
    monkeypatch.setattr(batch_split, "MIN_SPLIT_FLOPS", _flops(big))
    with fastbptt.threads(1):
        assert batch_split.blocks(big) is None            # one thread: never
    with fastbptt.threads(2):
        assert batch_split.blocks(big) == [(0, 4), (4, 8)]
        assert batch_split.blocks(_args(30, 1, 40, 48)) is None   # B = 1
        assert batch_split.blocks(_args(29, 8, 40, 48)) is None   # under the threshold
        assert batch_split.blocks(_args(40, 7, 40, 48)) == [(0, 3), (3, 7)]
        monkeypatch.setattr(blas, "callers_threads", lambda: 3)
        assert batch_split.blocks(_args(40, 7, 40, 48)) == [(0, 2), (2, 4), (4, 7)]
        assert batch_split.blocks(_args(120, 2, 40, 48)) == [(0, 1), (1, 2)]
        monkeypatch.setattr(blas, "callers_threads", lambda: 0)   # no control: never
        assert batch_split.blocks(big) is None


def _run(p, impl="compiled"):
    """{name: array} of h, the final states and the gradients, and the forward's cache."""
    h, cache = p.forward(impl)
    finals = final_states(p.spec, cache)
    grads = p.backward(cache, impl)
    out = {"h": h, **{f"{s}_n": f for s, f in zip(p.spec.states, finals)}, **grads._asdict()}
    return out, cache


def _split_run(p):
    with fastbptt.threads(2):
        out, cache = _run(p)
    return out, cache


# (T, B, I, H): blocks of 1 (GEMV rows), unequal blocks, blocks past GEMV_ROWS
SHAPES = [(5, 2, 3, 4), (6, 5, 4, 7), (7, 12, 5, 9)]
LAYOUTS = [pytest.param(False, False, id="time_major"),
           pytest.param(True, True, id="batch_first_lengths"),
           pytest.param(False, True, id="time_major_lengths")]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("batch_first, lengths", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_split_agrees_with_the_reference_and_one_thread(cell, dtype, batch_first, lengths,
                                                        shape, split_all):
    T, B = shape[:2]
    p = make_problem(SPECS[cell], *shape, dtype, batch_first=batch_first, seed=B,
                     lengths=np.arange(B) % (T + 1) if lengths else None)
    split, cache = _split_run(p)
    assert type(cache) is SplitCache
    with fastbptt.threads(1):
        one, one_cache = _run(p)
    assert type(one_cache) is not SplitCache
    ref, _ = _run(p, "reference")
    rtol, atol = tol_for(dtype)
    for name, value in split.items():
        assert value.dtype == np.dtype(dtype), name
        assert_close(value, one[name], rtol, atol, err_msg=f"{name} against one thread")
        assert_close(value, ref[name], rtol, atol, err_msg=f"{name} against the reference")


@pytest.mark.parametrize("cell", CELLS)
def test_split_is_bit_identical_run_to_run(cell, split_all):
    p = make_problem(SPECS[cell], 9, 6, 5, 8, np.float32, seed=4,
                     lengths=np.array([9, 3, 0, 9, 5, 8]))
    first, _ = _split_run(p)
    for _ in range(3):
        again, _ = _split_run(p)
        for name, value in first.items():
            np.testing.assert_array_equal(again[name], value, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_split_matches_finite_differences(cell, split_all):
    p = make_problem(SPECS[cell], 4, 3, 3, 4, np.float64, seed=2)
    with fastbptt.threads(2):
        assert type(p.forward()[1]) is SplitCache
        assert_matches_finite_differences(p, "compiled")


@pytest.mark.parametrize("cell", CELLS)
def test_checkpointed_segments_split(cell, split_all):
    p = make_problem(SPECS[cell], 11, 6, 4, 5, np.float64, seed=5, lengths=np.arange(6) * 2)
    with fastbptt.threads(2):
        h, cache = fastbptt.__dict__[f"{cell}_forward"](*p.forward_args(), checkpoint=3,
                                                        **p.forward_kwargs())
        assert type(cache) is CheckpointCache
        grads = p.backward(cache)
    with fastbptt.threads(1):
        one, _ = _run(p)
    rtol, atol = tol_for(np.float64)
    assert_close(h, one["h"], rtol, atol, err_msg="h")
    for name, value in grads._asdict().items():
        assert_close(value, one[name], rtol, atol, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_checkpointed_split_states_are_the_plain_splits(cell, split_all):
    """A checkpoint segment's blocks make the whole call's per-step products (its step
    form is chosen for the call's T, also where a block takes the fast path), so the
    states are the plain split call's bit for bit."""
    p = make_problem(SPECS[cell], 11, 6, 4, 5, np.float32, seed=6)
    forward = fastbptt.__dict__[f"{cell}_forward"]
    with fastbptt.threads(2):
        plain, plain_cache = forward(*p.forward_args(), **p.forward_kwargs())
        checkpointed, cache = forward(*p.forward_args(), checkpoint=3, **p.forward_kwargs())
    assert type(plain_cache) is SplitCache and type(cache) is CheckpointCache
    np.testing.assert_array_equal(checkpointed, plain)


def test_blocks_run_in_two_threads(split_all, monkeypatch):
    seen = set()
    plain = batch_split._forward_block

    def recording(*args):
        seen.add(threading.get_ident())
        return plain(*args)

    monkeypatch.setattr(batch_split, "_forward_block", recording)
    p = make_problem(SPECS["gru"], 5, 4, 3, 6, np.float32)
    with fastbptt.threads(2):
        p.forward()
        assert blas.blas_threads() == 2, "the caller's count is restored"
    assert len(seen) == 2 and threading.get_ident() in seen


@pytest.mark.parametrize("batch_first", [False, True])
def test_blocks_take_the_fast_path(split_all, batch_first):
    """A block without lengths runs through the compiled fast path (the driver's plain
    forward and backward, given here as ones that fail, are never called), its cache a
    plain CompiledCache of its rows, its outputs written into its rows of one array."""
    def unused(*_):
        raise AssertionError("the general path ran a block the fast path takes")

    p = make_problem(SPECS["lstm"], 6, 5, 3, 4, np.float64, batch_first=batch_first)
    spec = SPECS["lstm"]
    from fastbptt.cells.args import check_forward_args
    args = check_forward_args(spec, p["x"], [p[s] for s in spec.initial_states], p["W_ih"],
                              p["W_hh"], p["b_ih"], p["b_hh"], batch_first)
    with fastbptt.threads(2):
        h, cache = batch_split.forward(args, [(0, 2), (2, 5)], unused)
        grads = batch_split.backward(p["dh"], cache, (None, None), unused)
        whole, whole_cache = p.forward()
        expected = fastbptt.lstm_backward(p["dh"], whole_cache)
    assert [type(c) for c in cache.caches] == [driver.CompiledCache] * 2
    for c, (lo, hi) in zip(cache.caches, cache.blocks):
        rows = h[lo:hi] if batch_first else h[:, lo:hi]
        block_h = c.states[0][1:]
        np.testing.assert_array_equal(rows, block_h.transpose(1, 0, 2) if batch_first
                                      else block_h)
    np.testing.assert_array_equal(h, whole)   # the same blocks as the driver's split
    for name, value in grads._asdict().items():
        np.testing.assert_array_equal(value, getattr(expected, name), err_msg=name)


def test_a_failing_block_raises_in_the_caller_and_the_workers_recover(split_all):
    def boom():
        raise RuntimeError("block 1 failed")

    with fastbptt.threads(2):
        with pytest.raises(RuntimeError, match="block 1 failed"):
            batch_split._run_blocks([lambda: "first", boom])
        assert blas.blas_threads() == 2, "the caller's count is restored"
        assert batch_split._run_blocks([lambda: 0, lambda: 1, lambda: 2]) == [0, 1, 2]


def test_a_worker_whose_wait_was_interrupted_is_not_reused(monkeypatch):
    """A caller interrupted (KeyboardInterrupt) while a worker runs its block must not
    hand that worker a new job: its lock would say "ended" for the old one."""
    taken, release = [], threading.Event()
    take = batch_split._take_worker

    def recording():
        taken.append(take())
        return taken[-1]

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_split, "_take_worker", recording)
    with fastbptt.threads(2):
        with monkeypatch.context() as patch:
            patch.setattr(batch_split._Worker, "wait", interrupted)
            with pytest.raises(KeyboardInterrupt):
                batch_split._run_blocks([lambda: 0, lambda: release.wait(10)])
        release.set()
        assert taken[0] not in batch_split._idle
        assert batch_split._run_blocks([lambda: 0, lambda: 1]) == [0, 1]
        assert taken[1] is not taken[0] and taken[1] in batch_split._idle


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_splits_on_workers_of_its_own(split_all):
    """The parent's workers are not in a forked child: its splits start their own (a
    worker of the parent's list would never answer; the alarm ends the child then)."""
    p = make_problem(SPECS["rnn"], 5, 4, 3, 6, np.float64)
    expected, _ = _split_run(p)   # the parent's workers exist from here on
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child reports by its exit status
        code = 3
        try:
            signal.alarm(60)
            got, cache = _split_run(p)
            same = all(np.array_equal(got[k], expected[k]) for k in expected)
            code = 0 if type(cache) is SplitCache and same else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_no_input_features(split_all):
    p = make_problem(SPECS["rnn"], 4, 3, 0, 5, np.float64)
    split, cache = _split_run(p)
    assert type(cache) is SplitCache
    ref, _ = _run(p, "reference")
    for name, value in split.items():
        assert_close(value, ref[name], *tol_for(np.float64), err_msg=name)


def test_split_cache_final_states_and_bad_input(split_all):
    p = make_problem(SPECS["lstm"], 5, 4, 3, 6, np.float64)
    with fastbptt.threads(2):
        h, cache = p.forward()
        assert type(cache) is SplitCache
        np.testing.assert_array_equal(cache.h_n, h[-1])
        assert cache.c_n.shape == (4, 6)
        with pytest.raises(ValueError, match=r"dh must have shape \(T, B, H\) = \(5, 4, 6\)"):
            fastbptt.lstm_backward(np.zeros((5, 3, 6)), cache)
        with pytest.raises(ValueError, match="give dh"):
            fastbptt.lstm_backward(None, cache)
        with pytest.raises(TypeError, match="cache must come from fastbptt.gru_forward"):
            fastbptt.gru_backward(h, cache)


def test_concurrent_splits_equal_serial_splits_bit_for_bit(split_all):
    """Four threads splitting at once: each call's choice reads the caller's count
    (callers_threads), not the 1 that another call's section set, so every call splits
    as it does alone and gives the same bits."""
    problems = [make_problem(SPECS[cell], 8, 5, 4, 6, np.float32, seed=s)
                for s, cell in enumerate(["rnn", "lstm", "gru", "lstm"])]
    serial = [_split_run(p)[0] for p in problems]
    results, kinds, errors = {}, {}, []

    def work(i):
        try:
            for _ in range(10):
                out, cache = _run(problems[i])
                results.setdefault(i, []).append(out)
                kinds.setdefault(i, set()).add(type(cache))
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    with fastbptt.threads(2):
        workers = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert blas.blas_threads() == 2
    assert not errors
    for i, expected in enumerate(serial):
        assert kinds[i] == {SplitCache}
        for out in results[i]:
            for name, value in expected.items():
                np.testing.assert_array_equal(out[name], value, err_msg=name)
