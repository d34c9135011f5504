"""fastbptt.experiments: the task generators against their definitions, each experiment's
--quick form against a real effect it must show, and the `fastbptt experiment` command.

The quick runs are shared by module-scoped fixtures (each trains once) so the file stays
within seconds of CPU time.
"""
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastbptt
from fastbptt import experiments as ex
from fastbptt.app.cli import main

# ---------------------------------------------------------------- task generators

@pytest.mark.parametrize("T", [2, 3, 20, 201])
def test_adding_batch_definition(T):
    x, y = ex.adding_batch(T, 500, np.random.default_rng(T))
    assert x.shape == (T, 500, 2) and y.shape == (500, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    values, marker = x[:, :, 0], x[:, :, 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(marker)) <= {0.0, 1.0}
    assert np.all(marker.sum(axis=0) == 2)                  # exactly two markers
    half = T // 2
    assert np.all(marker[:half].sum(axis=0) == 1)           # one in the first half
    assert np.all(marker[half:].sum(axis=0) == 1)           # one in the second
    np.testing.assert_allclose(y[:, 0], (values * marker).sum(axis=0), rtol=1e-6)
    assert ex.adding_batch(T, 4, np.random.default_rng(0), dtype=np.float64)[0].dtype == np.float64


def test_adding_marker_positions_cover_each_half():
    x, _ = ex.adding_batch(10, 5000, np.random.default_rng(0))
    first = np.argmax(x[:5, :, 1], axis=0)
    second = 5 + np.argmax(x[5:, :, 1], axis=0)
    assert set(first) == set(range(5)) and set(second) == set(range(5, 10))


def test_adding_baseline_is_the_best_constant():
    # MSE of answering 1 = Var(u1 + u2) = 1/6, and 1 is the target's mean
    _, y = ex.adding_batch(2, 200_000, np.random.default_rng(1), dtype=np.float64)
    assert ex.ADDING_BASELINE_MSE == pytest.approx(1 / 6)
    assert np.mean(y) == pytest.approx(1.0, abs=0.005)
    assert np.mean((y - 1) ** 2) == pytest.approx(ex.ADDING_BASELINE_MSE, abs=0.002)


@pytest.mark.parametrize("T", [1, 5, 100])
def test_copy_batch_definition(T):
    inputs, targets = ex.copy_batch(T, 300, np.random.default_rng(T))
    L = T + 20
    assert inputs.shape == targets.shape == (L, 300)
    assert np.all((inputs[:10] >= 0) & (inputs[:10] < 8))          # 10 data symbols
    assert np.all(inputs[10:T + 9] == 8)                           # T - 1 blanks
    assert np.all(inputs[T + 9] == 9)                              # the delimiter
    assert np.all(inputs[T + 10:] == 8)                            # 10 blanks
    assert np.all(targets[:T + 10] == 8)
    assert np.array_equal(targets[T + 10:], inputs[:10])           # recall in order
    assert set(np.unique(inputs[:10])) == set(range(8))


@pytest.mark.parametrize("T", [1, 100, 500])
def test_copy_baseline_is_the_memoryless_loss(T):
    # The memoryless strategy: certain of blank for T + 10 steps, uniform over the 8
    # categories for the last 10; its mean cross-entropy through the library's own loss.
    inputs, targets = ex.copy_batch(T, 16, np.random.default_rng(0))
    L, V = T + 20, 10
    logits = np.full((L, 16, V), -60.0)
    logits[:T + 10, :, 8] = 60.0
    logits[T + 10:, :, :8] = 0.0
    h = logits.reshape(L * 16, V)
    loss, _ = fastbptt.softmax_cross_entropy(h, np.eye(V), None, targets.reshape(-1),
                                             compute_grad=False)
    assert ex.copy_baseline(T) == pytest.approx(10 * math.log(8) / (T + 20))
    assert float(loss) == pytest.approx(ex.copy_baseline(T), rel=1e-9)


def test_one_hot():
    out = ex.one_hot(np.array([[0, 2], [1, 1]]), 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    assert np.array_equal(out.argmax(-1), [[0, 2], [1, 1]]) and np.all(out.sum(-1) == 1)


@pytest.mark.parametrize("T, I", [(8, 8), (64, 1)])
def test_digits_sequences(T, I):
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = ex.load_digits_sequences(T, seed=0)
    assert x_train.shape[::2] == (T, I) and x_test.shape[::2] == (T, I)
    assert x_train.shape[1] + x_test.shape[1] == 1797
    assert x_train.min() >= 0 and x_train.max() <= 1
    # stratified: every class in both parts, in about the same proportion
    assert set(y_test) == set(range(10))
    np.testing.assert_allclose(np.bincount(y_test) / len(y_test),
                               np.bincount(y_train) / len(y_train), atol=0.01)
    # both readings are the same pixels in row-major order
    rows, _, _, _ = ex.load_digits_sequences(8, seed=0)
    np.testing.assert_array_equal(rows.transpose(1, 0, 2).reshape(-1, 64),
                                  x_train.transpose(1, 0, 2).reshape(-1, 64))
    assert 0.05 < ex.majority_baseline(y_train, y_test) < 0.15


def test_digits_bad_length_and_missing_sklearn(monkeypatch):
    with pytest.raises(ValueError, match="row by row"):
        ex.load_digits_sequences(16, seed=0)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"fastbptt\[experiments\]"):
        ex.load_digits_sequences(8, seed=0)


def test_majority_baseline():
    assert ex.majority_baseline(np.array([1, 1, 2]), np.array([1, 2, 2, 2])) == 0.25


def test_lstm_forget_bias_and_irnn_init():
    lstm = ex.Model("lstm", 2, 4, 1, seed=0).layer.params
    np.testing.assert_array_equal(lstm["bias_ih_l0"][4:8] + lstm["bias_hh_l0"][4:8], 1)
    irnn = ex.Model("irnn", 2, 4, 1, seed=0).layer
    assert irnn.nonlinearity == "relu"
    np.testing.assert_array_equal(irnn.params["weight_hh_l0"], np.eye(4))
    assert not irnn.params["bias_ih_l0"].any() and not irnn.params["bias_hh_l0"].any()
    with pytest.raises(ValueError, match="cell"):
        ex.Model("elman", 2, 4, 1, seed=0)


# ---------------------------------------------------------------- the quick experiments

@pytest.fixture(scope="module")
def adding():
    return ex.run("adding", ex.Options(quick=True))


def test_adding_quick_lstm_learns(adding):
    # the check: after a few hundred steps at T = 20 the LSTM is below half the
    # baseline
    row = next(r for r in adding.rows if r["cell"] == "lstm")
    assert row["T"] == 20 and row["test MSE"] < 0.5 * ex.ADDING_BASELINE_MSE


def test_adding_quick_gradient_flow(adding):
    T, H = 20, adding.settings.hidden
    for cell in ("rnn", "lstm"):
        for when in ("start", "end"):
            flow = adding.flows[cell, T][when]
            assert flow.grad_norm.shape == flow.jacobian_norm.shape == (1, T)
            assert flow.jacobian_norm[0, -1] == pytest.approx(math.sqrt(H))
    # what the theory predicts: through 19 steps the trained tanh RNN's Jacobian has
    # shrunk far more than the trained LSTM's
    rnn = adding.flows["rnn", T]["end"].jacobian_norm[0]
    lstm = adding.flows["lstm", T]["end"].jacobian_norm[0]
    assert rnn[0] / rnn[-1] < 0.1 * (lstm[0] / lstm[-1])


def test_adding_history(adding):
    h = adding.histories["lstm", 20]
    assert len(h.loss) == len(h.grad_norm) == adding.settings.steps
    assert h.eval_steps[0] == 0 and h.eval_steps[-1] == adding.settings.steps
    assert h.nonfinite_steps == 0


def test_copy_quick_beats_memoryless_baseline():
    result = ex.run("copy", ex.Options(quick=True))
    (row,) = result.rows
    # a few hundred steps only start the recall: below the baseline, and symbols recalled
    # above chance (1/8; 2000 test symbols, so chance's standard deviation is 0.0074)
    assert row["test loss"] < row["baseline"]
    assert row["recall accuracy"] > 0.15


def test_exploding_quick_clipping_tames_the_norm():
    result = ex.run("exploding", ex.Options(quick=True))
    unclipped = next(r for r in result.rows if r["clip"] is None)
    clipped = next(r for r in result.rows if r["clip"] is not None)
    # the same weights and batches: the first step's norm is the same ...
    first = [result.histories[k].grad_norm[0] for k in result.histories]
    assert first[0] == pytest.approx(first[1])
    assert ex.spectral_radius(np.eye(3) * 2) == pytest.approx(2)
    # ... then without clipping it explodes (the check: at least 100x)
    assert unclipped["max finite grad norm"] >= 100 * clipped["max finite grad norm"]
    assert clipped["non-finite steps"] == 0


def test_exploding_prints_no_numpy_warnings():
    # the defaults (T=50, spectral radius 3) overflow the unclipped network's gradient-flow
    # profile to inf and NaN on purpose: the experiment counts them, a user sees no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = ex.run("exploding", ex.Options())
    unclipped = next(r for r in result.rows if r["clip"] is None)
    assert unclipped["non-finite steps"] > 0     # the run did overflow


def test_digits_quick():
    pytest.importorskip("sklearn")
    result = ex.run("digits", ex.Options(quick=True))
    (row,) = result.rows
    assert row["test accuracy"] > 0.8 and row["test accuracy"] > 5 * row["baseline"]


# ---------------------------------------------------------------- the command

def test_cli_json(capsys):
    assert main(["experiment", "adding", "--quick", "--cells", "lstm", "--steps", "5",
                 "--T", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["experiment"] == "adding" and out["settings"]["T"] == [6]
    (row,) = out["rows"]
    assert row["cell"] == "lstm" and row["baseline"] == pytest.approx(1 / 6)
    (run,) = out["runs"]
    assert len(run["history"]["loss"]) == 5 and len(run["flow_end"]["grad_norm"]) == 6


def test_cli_table(capsys):
    assert main(["experiment", "exploding", "--quick", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "| tanh RNN | 20 | none |" in out and "non-finite steps" in out


@pytest.mark.parametrize("argv, message", [
    (["experiment", "digits", "--T", "16"], "row by row"),
    (["experiment", "exploding", "--cells", "lstm"], "exploding runs the cells rnn, irnn"),
    (["experiment", "adding", "--T", "1"], "T >= 2"),
])
def test_cli_bad_choices(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["experiment", "nope"], ["experiment", "adding", "--T", "x"],
                                  ["experiment", "copy", "--cells", "lstm,foo"]])
def test_cli_bad_options_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_cli_digits_without_sklearn(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert main(["experiment", "digits", "--quick"]) == 1
    err = capsys.readouterr().err
    assert 'pip install "fastbptt[experiments]"' in err and err.count("\n") == 1


def test_cli_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "flow.png"
    assert main(["experiment", "adding", "--quick", "--cells", "lstm", "--steps", "5",
                 "--T", "8", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_fastbptt_stays_light():
    code = ("import sys, fastbptt, fastbptt.experiments; "
            "print('matplotlib' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
