"""The examples run end to end with their small CI settings (subprocesses of this Python,
with this fastbptt first on the path)."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import fastbptt

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _run(script, *args):
    if not (EXAMPLES / script).exists():
        pytest.skip(f"examples/{script} is not in this tree (an installed-wheel run)")
    env = dict(os.environ)
    src = str(pathlib.Path(fastbptt.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_cs231n_model_prints_the_same_losses_for_both_layer_sets(cell):
    out = _run("cs231n_model.py", "--small", "--cell", cell)
    rows = re.findall(r"^\s+(\d+)\s+([-\d.]+)\s+([-\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2], out
    for _, numpy_loss, compat_loss in rows:
        assert float(numpy_loss) == pytest.approx(float(compat_loss), rel=1e-9)
    assert re.search(r"speed-up [\d.]+x", out), out


@pytest.mark.parametrize("cell,dtype", [("lstm", "float64"), ("rnn", "float64"),
                                        ("lstm", "float32")])
def test_captioning_rnn_samples_the_same_indices_on_both_layer_sets(cell, dtype):
    out = _run("captioning_rnn.py", "--small", "--cell", cell, "--dtype", dtype)
    # the notebooks' loss sanity checks, both layer sets, against the published values
    for check, expected in (("rnn", 9.83235591003), ("lstm", 9.82445935443)):
        line = re.search(rf"^  {check} +expected [\d.]+ +NumPy layers ([\d.]+) +"
                         rf"fastbptt.compat ([\d.]+)$", out, re.M)
        assert line, out
        assert all(abs(float(v) - expected) < 1e-10 for v in line.groups()), out
    rows = re.findall(r"^\s+(\d+)\s+([-\d.]+)\s+([-\d.]+)$", out, re.M)
    assert len(rows) >= 10, out
    for _, numpy_loss, compat_loss in rows:
        assert float(numpy_loss) == pytest.approx(float(compat_loss),
                                                  rel=1e-9 if dtype == "float64" else 1e-4)
    samples = re.findall(r"image \d: NumPy (\[[\d, ]+\])  compat (\[[\d, ]+\])", out)
    assert len(samples) == 4 and all(a == b for a, b in samples), out
    assert "identical sampled indices for all 12 images: True" in out, out


def test_min_char_rnn_trains_and_samples_on_the_corpus():
    out = _run("min_char_rnn.py", "--small")
    assert re.search(r"data has \d+ characters, \d+ unique", out), out
    losses = [float(v) for v in re.findall(r"iter \d+, loss: ([\d.]+)", out)]
    assert len(losses) == 3 and all(v > 0 for v in losses), out
    assert out.count("----") == 4, out          # two samples, each between rulers
    assert "lossFun (compat, bound to the globals)" in out, out


def test_min_char_rnn_loss_falls():
    # The script prints a smoothed loss (0.999 old + 0.001 new, from -log(1/V) * 25 at
    # iteration 0), so it moves slowly and may rise over the first iterations, when the
    # chunks' losses still exceed the start value; over 300 Adagrad steps on one BLAS
    # thread (the script's own limit, so the run is the same every time) it must fall
    # clearly, and still be falling at the end.
    out = _run("min_char_rnn.py", "--iters", "300", "--sample-every", "100")
    losses = [float(v) for v in re.findall(r"iter \d+, loss: ([\d.]+)", out)]
    assert len(losses) == 4, out                # iterations 0, 100, 200 and the end
    assert losses[-1] < 0.97 * losses[0], out
    assert losses[-1] < losses[-2] < losses[0], out


def test_min_char_rnn_bound_to_the_scripts_globals_agrees_with_the_script():
    # the script's own lossFun (reading its globals) and minchar.bind(globals()) at every
    # iteration of a training run on the compat results; samples from both samplers
    out = _run("min_char_rnn.py", "--compare", "--iters", "60", "--sample-every", "20")
    worst, mismatches = re.search(r"over 60 iterations: ([-+.\de]+); samples that differ: "
                                  r"(\d+)", out).groups()
    assert float(worst) < 1e-10 and mismatches == "0", out
    assert out.count("----") == 6, out          # three samples


def test_tagging_beats_the_majority_tag_baseline_by_a_wide_margin():
    out = _run("tagging.py", "--small")
    found = re.search(r"per-token accuracy: ([\d.]+) held out; majority-tag baseline "
                      r"([\d.]+), per-word baseline ([\d.]+)", out)
    assert found, out
    accuracy, majority, per_word = (float(v) for v in found.groups())
    assert accuracy > majority + 0.5, out
    assert accuracy > per_word, out          # the context helps: ambiguous words
    losses = [float(v) for v in re.findall(r"loss ([\d.]+)", out)]
    assert len(losses) == 4 and losses[-1] < losses[0], out
