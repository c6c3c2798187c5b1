"""Resolving and validating a run's options, and the vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

from seqkit.api import configure
from seqkit.errors import ConfigError
from seqkit.vocab import UNK, Vocab, detokenize, tokenize


SELECTS = {"temperature": {"decoder": "temperature"}, "alpha": {"decoder": "alpha"}}


@pytest.mark.parametrize("option, value, flag", [
    ("hidden", 0, "--hidden"), ("batch_size", -1, "--batch-size"), ("num_steps", 0, "--num-steps"),
    ("epochs", 0, "--epochs"), ("lr", 0.0, "--lr"), ("lr", -1.0, "--lr"), ("clip_theta", 0.0, "--clip-theta"),
    ("lr", float("nan"), "--lr"), ("seed", -1, "--seed"), ("hidden", True, "--hidden"),
    ("temperature", -0.1, "--temperature"), ("alpha", 0.0, "--alpha"), ("val_fraction", 1.0, "--val-fraction"),
    ("val_fraction", -0.1, "--val-fraction"), ("embedding", -2, "--embedding"), ("max_tokens", 1, "--max-tokens"),
    ("impl", "turbo", "--impl"), ("tokens", "byte", "--tokens"), ("dtype", "float16", "--dtype"),
    ("prefix", "", "--prefix"), ("lr_decay", 0.0, "--lr-decay"), ("hidden", 2.5, "--hidden"),
])
def test_invalid_values_name_the_flag(option, value, flag):
    with pytest.raises(ConfigError, match=flag):
        configure({**SELECTS.get(option, {}), option: value})


def test_temperature_zero_is_allowed():
    assert configure({"decoder": "temperature", "temperature": 0}).temperature == 0


def test_unknown_option_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        configure({"hiden": 4})


def test_corpus_file_selects_the_file_corpus(tmp_path):
    config = configure({"corpus_file": "x.txt"})
    assert config.corpus == "file" and config.corpus_file.endswith("x.txt")


def test_the_corpus_recommends_defaults_under_everything_else(tmp_path):
    book = configure()
    assert (book.epochs, book.lr, book.lr_decay, book.lr_decay_every) == (100, 1.0, 0.5, 25)
    assert configure({"epochs": 7}).epochs == 7
    assert configure({}, preset="d2l").epochs == 500
    plays = configure({"corpus": "shakespeare"})
    assert (plays.optimizer, plays.embedding, plays.beta1) == ("adam", 64, 0.9)
    assert configure({"corpus_file": str(tmp_path / "x.txt")}).epochs == 500  # the file corpus recommends nothing


def test_core_defaults_follow_the_lesson():
    c = configure({}, preset="d2l")
    assert (c.num_steps, c.batch_size, c.hidden, c.epochs, c.lr, c.clip_theta) == (35, 32, 512, 500, 1.0, 1.0)
    assert (c.sampler, c.cell, c.decoder, c.backend) == ("sequential", "rnn-tanh", "greedy", "numpy")


def test_vocab_orders_by_frequency_with_unk_first():
    vocab = Vocab(list("abbccc"), reserve_unk=True)
    assert vocab.idx_to_token == [UNK, "c", "b", "a"]
    assert vocab.unk == 0
    np.testing.assert_array_equal(vocab.encode(list("cab")), [1, 3, 2])
    assert vocab.decode([1, 3]) == ["c", "a"]
    assert vocab.unknown(list("xaxy")) == ["x", "y"]
    np.testing.assert_array_equal(vocab.encode(list("xa"), map_unknown=True), [0, 3])
    assert Vocab.from_list(vocab.idx_to_token).token_to_idx == vocab.token_to_idx


def test_vocab_without_unk_and_ties_broken_by_token():
    vocab = Vocab(list("ba"))
    assert vocab.idx_to_token == ["a", "b"] and vocab.unk is None


def test_tokenize_round_trip():
    assert tokenize("ab c", "char") == ["a", "b", " ", "c"]
    assert tokenize(" the  time\nmachine ", "word") == ["the", "time", "machine"]
    assert detokenize(["the", "time"], "word") == "the time"
    assert detokenize(list("ab"), "char") == "ab"
