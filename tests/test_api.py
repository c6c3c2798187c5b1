"""The Python API end to end: seqkit.train, Run.predict, Run.evaluate, output files, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from seqkit.plot import read_metrics

import seqkit
from seqkit.errors import ConfigError, DataError, PluginError


def test_learning_perplexity_falls_well_below_its_start(corpora_dir):
    run = seqkit.train(corpus="timemachine", max_tokens=20000, hidden=128, batch_size=16, num_steps=20,
                       epochs=12, lr=1.0, seed=0, predict_len=20)
    first, last = run.history[0]["train_ppl"], run.history[-1]["train_ppl"]
    assert first > 12 and last < 0.6 * first, (first, last)
    assert len(run.history) == 12


def test_train_predict_evaluate(corpora_dir, tiny):
    run = seqkit.train(**tiny)
    assert run.history[-1]["train_ppl"] > 1
    text = run.predict("time traveller", length=30)
    assert text.startswith("time traveller") and len(text) == len("time traveller") + 30
    assert text == run.predict("time traveller", length=30)  # greedy: deterministic
    sampled = [run.predict("time", length=40, decoder="temperature", temperature=1.0, seed=s) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]
    result = run.evaluate("the time machine by h g wells")
    assert result["ppl"] > 1 and result["bits_per_token"] == pytest.approx(np.log2(result["ppl"]))
    counted = run.evaluate("The Time Machine")
    assert counted["unknown_tokens"] == 3 and counted["unknown_policy"] == "counted as <unk>"


def test_same_seed_same_numbers(corpora_dir, tiny):
    a, b = seqkit.train(**tiny), seqkit.train(**tiny)
    assert [r["train_ppl"] for r in a.history] == [r["train_ppl"] for r in b.history]
    c = seqkit.train(**{**tiny, "seed": 1})
    assert c.history[-1]["train_ppl"] != a.history[-1]["train_ppl"]


@pytest.mark.parametrize("extra", [
    {"impl": "scratch"}, {"cell": "rnn-relu"}, {"sampler": "random"}, {"embedding": 8},
    {"clipper": "none"}, {"no_detach": True, "max_tokens": 600}, {"tokens": "word", "max_tokens": 800},
    {"dtype": "float64"}, {"decoder": "alpha", "alpha": 2.0},
])
def test_option_variants_train(corpora_dir, tiny, extra):
    run = seqkit.train(**{**tiny, **extra})
    assert np.isfinite(run.history[-1]["train_ppl"])
    assert run.predict(length=5)


def test_output_folder_files(corpora_dir, tiny, tmp_path):
    out = tmp_path / "run"
    seqkit.train(**tiny, out=str(out), val_fraction=0.1)
    rows = read_metrics(out)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["val_ppl"] > 1 and rows[-1]["val_bpc"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["config"]["hidden"] == 32 and summary["backend"] == "numpy" and summary["device"] == "cpu"
    assert summary["seqkit_version"] == seqkit.__version__
    assert summary["val_ppl"] == rows[-1]["val_ppl"] and summary["sample"].startswith("time traveller")
    assert summary["tokens_per_s"] > 0 and summary["wall_time_s"] > 0


def test_shakespeare_has_a_validation_split_by_default(corpora_dir):
    run = seqkit.train(corpus="shakespeare", max_tokens=4000, hidden=16, batch_size=4, num_steps=10, epochs=1)
    assert run.history[-1]["val_ppl"] is not None
    assert run.predict(length=5).startswith("ROMEO:")


def test_diverging_loss_keeps_the_metrics(corpora_dir, tiny, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(seqkit.SeqkitError, match=r"loss became .*metrics so far are in"):
        seqkit.train(**{**tiny, "clipper": "none", "lr": 1e30, "epochs": 3}, out=str(out))
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"


def test_prefix_with_unseen_tokens_fails_before_training(corpora_dir, tiny):
    with pytest.raises(ConfigError, match=r"outside the vocabulary: 'T', 'X'"):
        seqkit.train(**tiny, prefix="The X")


def test_num_steps_too_long_for_the_corpus(corpora_dir, tiny):
    with pytest.raises(ConfigError, match="lower --num-steps or --batch-size"):
        seqkit.train(**{**tiny, "max_tokens": 50, "num_steps": 40})


def test_unwritable_output_fails_before_training(corpora_dir, tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write to output folder"):
        seqkit.train(**tiny, out=str(blocker / "sub"))


def test_unknown_component_names(corpora_dir, tiny):
    with pytest.raises(PluginError, match="choose one of: random, sequential"):
        seqkit.train(**tiny, sampler="shuffled")


def test_word_level_vocabulary_rejects_unknown_words_without_unk(tmp_path, tiny):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat " * 60)
    options = {k: v for k, v in tiny.items() if k != "corpus"}
    run = seqkit.train(**options, corpus_file=str(text), tokens="word", prefix="the cat")
    assert run.predict(length=3).startswith("the cat")
    with pytest.raises(DataError, match="'dog'"):
        run.evaluate("the dog sat")
    assert os.path.exists(text)


def test_random_offset_option_reaches_the_sampler(corpora_dir, tiny):
    a = seqkit.train(**tiny, sampler="random", random_offset=False)
    b = seqkit.train(**tiny, sampler="random")
    assert a.history[-1]["train_ppl"] != b.history[-1]["train_ppl"]
    assert a.config.random_offset is False
