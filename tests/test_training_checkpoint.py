"""Training you cannot lose (fastbptt.training.checkpoint, `fastbptt demo`'s checkpoints).

The helper: ".npz" appended once, an existing file refused unless forced or resumed, a
failed write leaves the previous file whole, a deferred Ctrl-C. The demos, character and
word level: 2N steps in one run equal N steps, stop, resume N, bit for bit (parameters,
optimizer state, carried state, losses, sampling RNG); a late failure keeps the steps done;
a diverging run stops before its update with advice. The command line: SIGINT saves and
exits 130 with one line and the checkpoint is accepted by `sample` and `--resume`.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastbptt.app import demo, wordlm
from fastbptt.app.cli import main
from fastbptt.training import checkpoint
from fastbptt.training.checkpoint import (
    CheckpointError,
    TrainingDiverged,
    checkpoint_path,
    deferred_interrupt,
    load_arrays,
    read_meta,
    save_atomic,
)

TINY = ["--hidden", "16", "--seq-len", "8", "--batch", "4", "--sample-length", "15",
        "--threads", "1"]


def quiet(*_):
    pass


@pytest.fixture
def short_text(tmp_path):
    """A text of 12 windows per pass at batch 4, seq_len 8: N = 7 steps cross a pass."""
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat; a dog ran. " * 12, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------ the helper

def test_checkpoint_path_appends_npz_and_checks_the_directory(tmp_path):
    assert checkpoint_path(tmp_path / "run") == str(tmp_path / "run.npz")
    assert checkpoint_path(tmp_path / "run.npz") == str(tmp_path / "run.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint_path(tmp_path / "missing" / "run.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        checkpoint_path(tmp_path / "dir.npz")


def test_checkpoint_path_refuses_an_existing_file_unless_forced_or_resumed(tmp_path):
    path = tmp_path / "run.npz"
    path.write_bytes(b"old")
    with pytest.raises(CheckpointError, match="already exists: pass --force"):
        checkpoint_path(path)
    assert checkpoint_path(path, force=True) == str(path)
    assert checkpoint_path(path, resuming=str(path)) == str(path)
    other = tmp_path / "other.npz"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="already exists"):
        checkpoint_path(path, resuming=str(other))


def test_save_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    save_atomic(path, {"a": np.arange(3)})

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space"):
        save_atomic(path, {"a": np.arange(5)})
    assert load_arrays(path)["a"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["run.npz"]      # no temporary file left behind


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"", "the file is empty"),
    (b"hello, world\n", "not a .npz archive"),
    (b"\x93NUMPY\x01\x00", "a single NumPy array"),
    ("truncated", "truncated or corrupt"),
])
def test_load_arrays_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.npz"
    if content == "truncated":
        save_atomic(path, {"a": np.arange(1000)})
        path.write_bytes(path.read_bytes()[:300])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=problem) as info:
        load_arrays(path)
    assert str(info.value).startswith(str(path))


def test_read_meta_needs_the_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="without fastbptt metadata"):
        read_meta("x.npz", {"a": np.zeros(1)})
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_meta("x.npz", {"__meta__": np.array("[1, 2")})


def test_deferred_interrupt_sets_a_flag_then_interrupts_on_the_second():
    with deferred_interrupt() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------ resume, bit for bit

def assert_same_run(path_a, path_b):
    a, b = load_arrays(path_a), load_arrays(path_b)
    assert a.keys() == b.keys()
    for key in a:
        if key != "__meta__":   # parameters, optimizer state, carried state, history
            np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)
    meta_a, meta_b = read_meta(path_a, a), read_meta(path_b, b)
    assert meta_a["step"] == meta_b["step"]
    assert meta_a["run"]["trained_chars"] == meta_b["run"]["trained_chars"]


def samples(text):
    """{step: sample text} from a demo's printed output."""
    return {int(part.split()[0]): part.split("---\n", 1)[1].strip("\n")
            for part in text.split("--- sample at step ")[1:]}


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_char_demo_resumed_equals_uninterrupted(capsys, tmp_path, short_text, cell):
    opts = dict(cell=cell, hidden=16, seq_len=8, batch=4, sample_length=10, sample_every=3,
                text=short_text, checkpoint_every=0, eval_chars=0)
    whole = demo.run(demo.DemoOptions(steps=14, checkpoint=str(tmp_path / "whole"), **opts),
                     out=quiet)
    whole_samples = samples(capsys.readouterr().out)
    demo.run(demo.DemoOptions(steps=7, checkpoint=str(tmp_path / "half"), **opts), out=quiet)
    capsys.readouterr()
    resumed = demo.run(demo.DemoOptions(resume=str(tmp_path / "half.npz"),
                                        checkpoint=str(tmp_path / "half.npz"), steps=14,
                                        sample_length=10, sample_every=3, eval_chars=0),
                       out=quiet)
    resumed_samples = samples(capsys.readouterr().out)
    assert resumed_samples == {s: whole_samples[s] for s in (9, 12, 14)}
    assert resumed["history"] == whole["history"] and len(whole["history"]) == 14
    assert resumed["valid_loss"] == whole["valid_loss"]
    assert_same_run(tmp_path / "whole.npz", tmp_path / "half.npz")


def test_word_demo_resumed_equals_uninterrupted(tmp_path, short_text):
    opts = dict(hidden=16, seq_len=4, batch=2, sample_length=4, sample_every=3, min_count=1,
                text=short_text, checkpoint_every=0)
    whole = wordlm.run(wordlm.WordDemoOptions(steps=12, checkpoint=str(tmp_path / "whole"),
                                              **opts), out=quiet)
    wordlm.run(wordlm.WordDemoOptions(steps=6, checkpoint=str(tmp_path / "half"), **opts),
               out=quiet)
    resumed = wordlm.run(wordlm.WordDemoOptions(
        resume=str(tmp_path / "half.npz"), checkpoint=str(tmp_path / "half.npz"), steps=12,
        sample_length=4, sample_every=3), out=quiet)
    assert resumed["history"] == whole["history"]
    assert_same_run(tmp_path / "whole.npz", tmp_path / "half.npz")


def test_resume_rejects_another_text(tmp_path, short_text):
    demo.run(demo.DemoOptions(hidden=8, seq_len=8, batch=4, steps=2, sample_length=0,
                              text=short_text, checkpoint=str(tmp_path / "c")), out=quiet)
    with open(short_text, "a", encoding="utf-8") as f:
        f.write("the mat sat on the cat. ")
    with pytest.raises(CheckpointError, match="another text"):
        demo.run(demo.DemoOptions(resume=str(tmp_path / "c.npz"), steps=4,
                                  checkpoint=str(tmp_path / "c.npz")), out=quiet)


def test_a_late_failure_keeps_the_steps_done(tmp_path, short_text, monkeypatch):
    def broken_pipe(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(demo.CharLM, "sample", broken_pipe)
    path = tmp_path / "c.npz"
    with pytest.raises(BrokenPipeError):
        demo.run(demo.DemoOptions(hidden=8, seq_len=8, batch=4, steps=50, sample_every=5,
                                  text=short_text, checkpoint=str(path)), out=quiet)
    assert read_meta(path, load_arrays(path))["step"] == 5


def test_divergence_stops_before_the_update_with_advice(tmp_path, short_text):
    path = tmp_path / "c.npz"
    with _no_warnings():
        with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*lower --lr"):
            demo.run(demo.DemoOptions(hidden=8, seq_len=8, batch=4, steps=30, lr=1e6,
                                      sample_length=0, text=short_text, checkpoint=str(path),
                                      checkpoint_every=1), out=quiet)
    arrays = load_arrays(path)   # the last checkpoint holds finite parameters
    assert all(np.isfinite(arrays[k]).all() for k in arrays if k.startswith("weight"))


class _no_warnings:
    """Fail on any warning inside the block (NumPy's overflow warnings must not leak)."""

    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_advice_follows_the_loss():
    assert "lower --lr" in demo.advice([(1, 2.0), (2, 3.0), (3, 9.0)])
    assert "train longer" in demo.advice([(1, 3.0), (2, 2.5), (3, 2.4)])


# ------------------------------------------------------------------ the command line

def test_cli_stop_and_resume(capsys, tmp_path, short_text):
    ckpt = tmp_path / "m"
    assert main(["demo", "--steps", "3", "--checkpoint", str(ckpt), "--text", short_text,
                 *TINY]) == 0
    out = capsys.readouterr().out
    assert f"fastbptt sample {ckpt}.npz --length 300" in out   # the name written
    assert main(["demo", "--steps", "3", "--checkpoint", str(ckpt), "--text", short_text,
                 *TINY]) == 1
    err = capsys.readouterr().err
    assert "already exists: pass --force" in err and err.count("\n") == 1
    assert main(["demo", "--resume", f"{ckpt}.npz", "--steps", "5", *TINY]) == 0
    out = capsys.readouterr().out
    assert f"resumed {ckpt}.npz at step 3 of 5" in out and "trained 5 steps" in out
    assert main(["demo", "--resume", f"{ckpt}.npz", "--hidden", "32"]) == 2
    assert "--hidden cannot change on --resume" in capsys.readouterr().err
    assert main(["demo", "--steps", "2", "--checkpoint", str(ckpt), "--force",
                 "--text", short_text, *TINY]) == 0


@pytest.mark.parametrize("argv, needle", [
    (["--checkpoint", "{tmp}/missing/m.npz"], "--checkpoint {tmp}/missing/m.npz: the "
                                              "directory {tmp}/missing does not exist"),
    (["--plot", "{tmp}/missing/p.png"], "--plot"),
])
def test_cli_checks_outputs_before_training(capsys, tmp_path, argv, needle):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["demo", "--steps", "2", *argv, *TINY]) == 1
    captured = capsys.readouterr()
    assert needle.format(tmp=tmp_path) in captured.err and "unigram" not in captured.out


def test_cli_divergence_is_one_line_and_no_warning(tmp_path, short_text):
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "fastbptt", "demo", "--lr", "1e6", "--steps",
         "30", "--checkpoint", "", "--text", short_text, *TINY],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "fastbptt demo" in line]
    assert len(lines) == 1 and "diverged" in lines[0] and "lower --lr" in lines[0]
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_text("not a checkpoint"), "not a .npz archive"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros(2)) or
     os.replace(p.with_suffix(".npy"), p), "a single NumPy array"),
    (lambda p: np.savez(p, a=np.zeros(2)), "without fastbptt metadata"),
    (lambda p: np.savez(p, __meta__=np.array('{"format": "fastbptt-charlm-1"}')),
     "lacks 'vocab'"),
    (lambda p: np.savez(p, __meta__=np.array('{"format": "fastbptt-wordlm-1"}')),
     "lacks 'vocab'"),
    (lambda p: np.savez(p, __meta__=np.array('{"format": "other-7"}')),
     "unknown checkpoint format"),
])
def test_sample_bad_files_are_one_line(capsys, tmp_path, make, problem):
    path = tmp_path / "bad.npz"
    make(path)
    assert main(["sample", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"fastbptt sample: error: {path}: " + err.split(": ", 3)[-1]
    assert problem in err and err.count("\n") == 1


def test_sample_truncated_file(capsys, tmp_path, short_text):
    path = tmp_path / "m.npz"
    assert main(["demo", "--steps", "1", "--checkpoint", str(path), "--text", short_text,
                 *TINY]) == 0
    path.write_bytes(path.read_bytes()[:2000])
    capsys.readouterr()
    assert main(["sample", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastbptt sample: error: {path}: truncated or corrupt")
    assert err.count("\n") == 1


def test_version(capsys):
    import fastbptt
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"fastbptt {fastbptt.__version__}\n"


def _demo_process(tmp_path, *argv):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "fastbptt", "demo", *argv, *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)


def test_sigint_saves_a_checkpoint_that_sample_and_resume_accept(capsys, tmp_path):
    ckpt = tmp_path / "run.npz"
    proc = _demo_process(tmp_path, "--steps", "100000", "--sample-every", "1",
                         "--checkpoint", str(ckpt), "--checkpoint-every", "0")
    try:
        assert "--- sample at step 1 " in proc.stdout.readline() + proc.stdout.readline() + \
            "".join(proc.stdout.readline() for _ in range(4))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "fastbptt demo" in line]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("fastbptt demo: interrupted after step ")
    assert f"checkpoint saved to {ckpt} (continue with: fastbptt demo --resume {ckpt})" \
        in lines[0]
    step = int(lines[0].split("after step ")[1].split(";")[0])
    assert read_meta(ckpt, load_arrays(ckpt))["step"] == step
    assert main(["sample", str(ckpt), "--length", "10", "--seed", "0"]) == 0
    assert main(["demo", "--resume", str(ckpt), "--steps", str(step + 2), *TINY]) == 0
    assert f"trained {step + 2} steps" in capsys.readouterr().out


def test_broken_pipe_exits_quietly(tmp_path):
    proc = _demo_process(tmp_path, "--steps", "100000", "--sample-every", "1",
                         "--checkpoint", "")
    try:
        proc.stdout.readline()
        proc.stdout.close()          # the reader goes away, as `| head -1` does
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.returncode == 141
    assert "Traceback" not in err and "Broken pipe" not in err and "error" not in err


def test_run_keeper_saves_completed_steps_never_a_half_update(tmp_path):
    from fastbptt import RNN, SGD
    from fastbptt.training.checkpoint import RunKeeper
    layer = RNN(2, 3, seed=0)
    opt = SGD(layer.params, lr=0.1)
    path = tmp_path / "k.npz"
    keeper = RunKeeper(str(path), layer.params, opt, layer, lambda: {"what": "test"},
                       every=2)
    grads = {k: np.ones_like(v) for k, v in layer.params.items()}

    def steps(fail_inside_update):
        with keeper.guard():
            for _ in range(3):
                with keeper.updating():
                    opt.step(grads)
                    if fail_inside_update and keeper.step == 2:
                        raise MemoryError
                keeper.completed(None, 1.0)
                keeper.checkpoint()
            raise MemoryError               # after three completed steps

    with pytest.raises(MemoryError):
        steps(fail_inside_update=False)
    assert read_meta(path, load_arrays(path))["step"] == 3    # saved by the failure
    keeper.step = 0
    with pytest.raises(MemoryError):
        steps(fail_inside_update=True)
    # the failure came mid-update at step 3: the checkpoint of step 2 stands
    arrays = load_arrays(path)
    assert read_meta(path, arrays)["step"] == 2 and read_meta(path, arrays)["what"] == "test"
