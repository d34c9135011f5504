"""The word-level language model of `fastbptt demo --level word` (fastbptt.app.wordlm): the
tokenizer and vocabulary, the baseline, one training step's gradients (tied and untied)
against finite differences, a short run that must beat the unigram baseline, samples,
checkpoints and `fastbptt sample`, the command line."""
import math

import numpy as np
import pytest

from fastbptt import TruncatedBPTT
from fastbptt.app import wordlm
from fastbptt.app.cli import main

TINY = ["--hidden", "16", "--seq-len", "8", "--batch", "4", "--sample-length", "5"]


def test_tokenize_and_detokenize():
    tokens = wordlm.tokenize("The clock's hands, at 12:05 -- don't stop!\nNext.")
    assert tokens == ["the", "clock's", "hands", ",", "at", "12", ":", "05", "-", "-",
                      "don't", "stop", "!", "next", "."]
    assert wordlm.detokenize(["the", "clock", ",", "it", "ran", "."]) == "the clock, it ran."


def test_vocabulary_cut_off_and_unknown_words():
    vocab = wordlm.build_vocab("b a b c b a d".split(), min_count=2)
    assert vocab == ["<unk>", "b", "a"]
    model = wordlm.WordLM(vocab, hidden_size=4, seed=0)
    np.testing.assert_array_equal(model.encode(["a", "zebra", "b"]), [2, 0, 1])


def test_unigram_perplexity_by_hand():
    # add-one smoothed counts of [0, 1, 1] over V = 3: (1, 2, 3) / 6
    ppl = wordlm.unigram_perplexity(np.array([1, 2, 2]), np.array([2, 1]), 3)
    assert ppl == pytest.approx(math.exp(-(math.log(3 / 6) + math.log(2 / 6)) / 2))


@pytest.mark.parametrize("tied", [False, True])
def test_step_gradients_match_finite_differences(tied):
    vocab = ["<unk>"] + [f"w{i}" for i in range(6)]
    model = wordlm.WordLM(vocab, hidden_size=5, tied=tied, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(0, 7, (4, 3)), rng.integers(0, 7, (4, 3))
    loss, grads = model.step(inputs, targets, TruncatedBPTT(model.layer, 4))
    assert set(grads) == set(model.params)
    keys = ("embedding.weight", "head.bias", "weight_hh_l0") + (() if tied else ("head.weight",))
    for key in keys:
        p, eps = model.params[key], 1e-6
        for idx in [tuple(rng.integers(0, n) for n in p.shape) for _ in range(4)]:
            old = p[idx]
            p[idx] = old + eps
            plus = model.step(inputs, targets, TruncatedBPTT(model.layer, 4))[0]
            p[idx] = old - eps
            minus = model.step(inputs, targets, TruncatedBPTT(model.layer, 4))[0]
            p[idx] = old
            assert grads[key][idx] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5,
                                                    abs=1e-9), (key, idx)
    if tied:
        assert "head.weight" not in model.params


@pytest.mark.parametrize("tied", [False, True])
def test_a_short_run_beats_the_unigram_baseline(tied):
    """A seconds-long form of the demo: the held-out perplexity ends below the unigram
    baseline's (the defaults end far below it: docs/guide/embeddings.md)."""
    o = wordlm.WordDemoOptions(hidden=32, seq_len=16, batch=16, steps=150, lr=1e-2,
                               tied=tied, checkpoint=None, sample_length=0, threads=1)
    summary = wordlm.run(o, out=lambda *a: None)
    assert summary["valid_perplexity"] < 0.9 * summary["baseline_perplexity"], summary
    first, last = summary["history"][0][1], summary["history"][-1][1]
    assert last < first


def test_sample_and_checkpoint_round_trip(tmp_path):
    vocab = wordlm.build_vocab(wordlm.tokenize("the clock ran . the clock stopped , the end ."), 1)
    model = wordlm.WordLM(vocab, hidden_size=8, tied=True, seed=3)
    text = model.sample(6, rng=0)
    assert len(wordlm.tokenize(text)) == 6 and "<unk>" not in text
    assert model.sample(3, prime="the clock", rng=0).startswith(" ")
    path = tmp_path / "w.npz"
    model.save(path, step=1)
    loaded, meta = wordlm.load_checkpoint(path)
    assert isinstance(loaded, wordlm.WordLM) and meta["step"] == 1 and loaded.tied
    assert loaded.sample(6, rng=0) == text
    for key, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[key], value)
    # tied: the head reads the embedding's own array after loading too
    assert loaded.head_weight is loaded.embedding.weight


def test_word_model_bad_arguments():
    with pytest.raises(ValueError, match="embedding_dim == hidden_size"):
        wordlm.WordLM(["<unk>", "a"], hidden_size=8, embedding_dim=4, tied=True)
    with pytest.raises(ValueError, match="<unk>"):
        wordlm.WordLM(["a", "b"], hidden_size=8)
    with pytest.raises(ValueError, match="too short"):
        wordlm.split_streams(np.arange(10), 4, 8)


def test_demo_level_word_then_sample(capsys, tmp_path):
    ckpt = tmp_path / "w.npz"
    assert main(["demo", "--level", "word", "--tied", "--steps", "4", "--checkpoint",
                 str(ckpt), "--sample-every", "2", *TINY]) == 0
    out = capsys.readouterr().out
    for promise in ("word model", "tied to the output", "unigram baseline: held-out perplexity",
                    "--- sample at step 2", "--- sample at step 4", "trained 4 steps",
                    "held out; unigram baseline", f"checkpoint: {ckpt}"):
        assert promise in out, promise
    assert main(["sample", str(ckpt), "--length", "7", "--seed", "1", "--prime", "The"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("The ") and len(wordlm.tokenize(text)) == 8


@pytest.mark.parametrize("argv", [["demo", "--tied"], ["demo", "--embedding-dim", "8"],
                                  ["demo", "--level", "word", "--tied", "--embedding-dim", "8"]])
def test_demo_word_options_errors_are_one_line(capsys, argv):
    code = main(argv + ["--steps", "1", "--checkpoint", ""] + TINY)
    err = capsys.readouterr().err
    assert code in (1, 2) and err.startswith("fastbptt demo: error:") and err.count("\n") == 1


def test_demo_level_is_checked_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--level", "sentence"])
    assert exit_info.value.code == 2 and "--level" in capsys.readouterr().err


def test_evaluate_streams_in_chunks_with_the_loss_of_one_pass(monkeypatch):
    vocab = [wordlm.UNK] + [f"w{i}" for i in range(9)]
    model = wordlm.WordLM(vocab, hidden_size=6, embedding_dim=5, dtype=np.float64, seed=0)
    ix = np.random.default_rng(0).integers(0, 10, 401)
    whole = model.evaluate(ix, 4)                         # 100 steps: one chunk
    monkeypatch.setattr(wordlm, "_EVAL_BYTES", 4 * (10 + 5 + 8 * 6) * 8 * 7)   # 7 steps
    assert model.evaluate(ix, 4) == pytest.approx(whole, rel=1e-12)
