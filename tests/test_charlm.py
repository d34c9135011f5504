"""The character language model behind `fastbptt demo` (fastbptt.app.charlm, fastbptt.app.demo).

A short training run's loss falls and beats the unigram baseline; the compiled and reference
backends give the same losses step by step in float64; checkpoints round-trip exactly;
sampling is seeded and validated; bad text and bad checkpoints raise clear errors.
"""
import json
import math

import numpy as np
import pytest

from fastbptt.app.charlm import CharLM, unigram_entropy
from fastbptt.app.corpus import load_corpus
from fastbptt.app.demo import DemoOptions, read_text, run, split_streams
from fastbptt.cells.spec import CELLS

TINY = dict(hidden=24, seq_len=12, batch=4, sample_length=20, checkpoint=None)


def quiet(*_):
    pass


def test_corpus_ships_with_the_package():
    text = load_corpus()
    assert len(text) > 15_000 and text.isascii()
    assert read_text(None) == text


def test_unigram_entropy_by_hand():
    # "aab": p = (2/3, 1/3)
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert unigram_entropy("aab") == pytest.approx(expected, rel=1e-15)
    assert unigram_entropy("aaaa") == 0.0


def test_encode_decode_and_one_hot():
    model = CharLM("abc ", hidden_size=4)
    ix = model.encode("cab a")
    assert ix.tolist() == [2, 0, 1, 3, 0] and model.decode(ix) == "cab a"
    onehot = model.one_hot(ix.reshape(5, 1))
    assert onehot.shape == (5, 1, 4) and onehot.dtype == np.float32
    assert (onehot.argmax(-1).ravel() == ix).all() and onehot.sum() == 5
    with pytest.raises(ValueError, match="'z' is not in the model's vocabulary"):
        model.encode("abz")


@pytest.mark.parametrize("vocab", ["a", "aab", ""])
def test_bad_vocab(vocab):
    with pytest.raises(ValueError, match="vocab"):
        CharLM(vocab)


def test_bad_cell():
    with pytest.raises(ValueError, match="cell must be one of"):
        CharLM("ab", cell="transformer")


def test_split_streams():
    ix = np.arange(21)
    inputs, targets = split_streams(ix, batch=4, seq_len=5)
    assert inputs.shape == targets.shape == (5, 4)
    assert inputs[:, 1].tolist() == [5, 6, 7, 8, 9]     # stream 1 is contiguous text
    assert (targets == inputs + 1).all()
    with pytest.raises(ValueError, match="too short"):
        split_streams(ix, batch=4, seq_len=6)


@pytest.mark.parametrize("cell", CELLS)
def test_short_training_run_learns(cell):
    summary = run(DemoOptions(cell=cell, steps=40, lr=1e-2, **TINY), out=quiet)
    losses = [loss for _, loss in summary["history"]]
    assert len(losses) == 40 and summary["steps"] == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    assert summary["train_loss"] < summary["baseline"]


def test_compiled_and_reference_give_the_same_losses():
    opts = dict(TINY, steps=6, dtype="float64", sample_length=0)
    compiled = run(DemoOptions(backend="compiled", **opts), out=quiet)
    reference = run(DemoOptions(backend="reference", **opts), out=quiet)
    np.testing.assert_allclose([l for _, l in compiled["history"]],
                               [l for _, l in reference["history"]], rtol=1e-10)
    assert compiled["valid_loss"] == pytest.approx(reference["valid_loss"], rel=1e-10)


def test_run_on_a_text_file_prints_baseline_and_saves(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. " * 80, encoding="utf-8")
    ckpt = tmp_path / "model.npz"
    lines = []
    opts = dict(TINY, checkpoint=str(ckpt))
    summary = run(DemoOptions(text=str(path), steps=5, **opts), out=lines.append)
    out = "\n".join(lines)
    assert "unigram baseline" in out and str(path) in out and "held-out loss is" in out
    model, meta = CharLM.load(ckpt)
    assert model.vocab == "".join(sorted(set(path.read_text())))
    assert meta["step"] == 5 and meta["valid_loss"] == pytest.approx(summary["valid_loss"])


def test_text_too_short(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abc", encoding="utf-8")
    with pytest.raises(ValueError, match="too short"):
        run(DemoOptions(text=str(path), steps=1, **TINY), out=quiet)


@pytest.mark.parametrize("cell", CELLS)
def test_checkpoint_round_trip(tmp_path, cell):
    model = CharLM("abcdef. ", cell=cell, hidden_size=8, num_layers=2, seed=3)
    for value in model.params.values():   # parameters that differ from a fresh init
        value += 0.01
    model.save(tmp_path / "m.npz", step=7)
    loaded, meta = CharLM.load(tmp_path / "m.npz")
    assert meta["step"] == 7 and meta["cell"] == cell and meta["num_layers"] == 2
    assert loaded.params.keys() == model.params.keys()
    for key in model.params:
        np.testing.assert_array_equal(loaded.params[key], model.params[key])
        assert loaded.params[key].dtype == model.params[key].dtype
    # the layer uses the loaded arrays (shared, not copied)
    for key, value in loaded.layer.params.items():
        assert value is loaded.params[key]
    assert loaded.sample(30, rng=1) == model.sample(30, rng=1)


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="without fastbptt metadata, not a fastbptt checkpoint"):
        CharLM.load(tmp_path / "other.npz")
    meta = {"format": "something-else"}
    np.savez(tmp_path / "fmt.npz", __meta__=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        CharLM.load(tmp_path / "fmt.npz")
    model = CharLM("ab", hidden_size=4)
    model.save(tmp_path / "m.npz")
    data = dict(np.load(tmp_path / "m.npz"))
    data["head.weight"] = data["head.weight"][:, :3]
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="head.weight has shape"):
        CharLM.load(tmp_path / "bad.npz")


def test_sample_is_seeded_and_validated():
    model = CharLM("abcd", hidden_size=6)
    assert len(model.sample(25, rng=0)) == 25
    assert model.sample(25, rng=0) == model.sample(25, rng=0)
    assert set(model.sample(200, 1.5, prime="ab", rng=1)) <= set("abcd")
    assert model.sample(0) == ""
    # a very low temperature is (almost) greedy: the same continuation for any seed
    assert model.sample(10, 1e-3, prime="a", rng=1) == model.sample(10, 1e-3, prime="a", rng=2)
    with pytest.raises(ValueError, match="length"):
        model.sample(-1)
    for bad in (0, -1.0, float("nan"), float("inf"), "hot"):
        with pytest.raises(ValueError, match="temperature"):
            model.sample(5, bad)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        model.sample(5, prime="xyz")


def test_evaluate_streams_in_chunks_with_the_loss_of_one_pass(monkeypatch):
    from fastbptt.app import charlm
    model = CharLM("abcdefgh", hidden_size=8, dtype=np.float64, seed=0)
    ix = np.random.default_rng(0).integers(0, 8, 1001)
    T = 1000 // 4
    x = model.one_hot(ix[:4 * T].reshape(4, T).T)          # the whole text in one forward
    output, _ = model.layer.forward(x)
    whole, _, _ = model.head_loss(output, ix[1:4 * T + 1].reshape(4, T).T, compute_grad=False)
    monkeypatch.setattr(charlm, "_EVAL_BYTES", 4 * (8 + 8 * 8) * 8 * 7)   # chunks of 7 steps
    assert model.evaluate(ix, batch=4) == pytest.approx(whole, rel=1e-12)


def test_encode_in_chunks_to_a_narrow_dtype(monkeypatch):
    from fastbptt.app import charlm
    monkeypatch.setattr(charlm, "_ENCODE_CHUNK", 3)
    model = CharLM("dcba ", hidden_size=4)   # not in code-point order
    ix = model.encode("abcd dcba", np.uint8)
    assert ix.dtype == np.uint8 and model.decode(ix) == "abcd dcba"
    with pytest.raises(ValueError, match="'z' is not in"):
        model.encode("abcd z", np.uint8)


def test_a_large_vocabulary_trains(tmp_path):
    from fastbptt.app.demo import index_dtype
    rng = np.random.default_rng(0)
    chars = [chr(0x4E00 + i) for i in range(3000)]
    path = tmp_path / "zh.txt"
    path.write_text("".join(rng.choice(chars, 4000)), encoding="utf-8")
    summary = run(DemoOptions(text=str(path), steps=2, **TINY), out=quiet)
    assert summary["steps"] == 2 and np.isfinite(summary["valid_loss"])
    assert index_dtype(256) == np.uint8 and index_dtype(3000) == np.uint16
    assert index_dtype(70000) == np.uint32
