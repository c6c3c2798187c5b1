"""The sampler and corpus contracts.

::

    from seqkit.testing import check_corpus, check_sampler
    def test_my_sampler():
        check_sampler(MySampler())
    def test_my_corpus(tmp_path):
        check_corpus(MyCorpus(data_dir=str(tmp_path)))
"""

from __future__ import annotations

import numpy as np

from seqkit.corpus import Corpus
from seqkit.sampler import Sampler
from seqkit.vocab import UNK, Vocab, tokenize


def _epoch(sampler: Sampler, tokens: np.ndarray, batch_size: int, num_steps: int, seed: int):
    return list(sampler.batches(tokens, batch_size, num_steps, np.random.default_rng(seed)))


def check_sampler(sampler: Sampler, num_tokens: int = 1000, batch_size: int = 4, num_steps: int = 7,
                  distinct: bool = True) -> None:
    """On tokens 0..N-1: every (X, Y) is int, (batch, steps), ``Y = X + 1`` (the next token); the
    same seed gives the same epoch; there are at least ``min_batches`` minibatches; the epoch reads
    nearly the whole text, each token once (``distinct``: at most (batch + 2) × steps + batch
    tokens left out); with ``carries_state`` each minibatch continues the previous one row by row."""
    tokens = np.arange(num_tokens, dtype=np.int64)
    for seed in range(3):
        batches = _epoch(sampler, tokens, batch_size, num_steps, seed)
        assert batches, f"no minibatches from {num_tokens} tokens with batch {batch_size}, steps {num_steps}"
        again = _epoch(sampler, tokens, batch_size, num_steps, seed)
        assert all(np.array_equal(x, x2) and np.array_equal(y, y2) for (x, y), (x2, y2) in zip(batches, again)) \
            and len(again) == len(batches), "the same seed gave different minibatches: use only the rng given"
        for X, Y in batches:
            X, Y = np.asarray(X), np.asarray(Y)
            assert X.shape == Y.shape == (batch_size, num_steps), \
                f"minibatch shapes {X.shape} and {Y.shape}, expected ({batch_size}, {num_steps})"
            assert np.issubdtype(X.dtype, np.integer) and np.issubdtype(Y.dtype, np.integer), "X and Y must be int"
            assert np.array_equal(Y, X + 1), "Y must be X shifted by one token (the next token of each input)"
        minimum = sampler.min_batches(num_tokens, batch_size, num_steps)
        assert len(batches) >= minimum, f"{len(batches)} minibatches, fewer than min_batches() = {minimum}"
        read = np.concatenate([np.asarray(x).reshape(-1) for x, _ in batches])
        if distinct:
            assert len(np.unique(read)) == len(read), "a token was read twice in one epoch"
            dropped = num_tokens - len(read)
            allowed = (batch_size + 2) * num_steps + batch_size
            assert dropped <= allowed, f"the epoch left out {dropped} of {num_tokens} tokens (at most {allowed})"
        if sampler.carries_state:
            for (X0, _), (X1, _) in zip(batches, batches[1:]):
                assert np.array_equal(np.asarray(X1)[:, 0], np.asarray(X0)[:, -1] + 1), \
                    "carries_state is True but a minibatch does not continue the previous one row by row"
    assert sampler.min_batches(1, batch_size, num_steps) == 0, "min_batches of a 1-token text must be 0"


def check_corpus(corpus: Corpus, tokens: str = "char") -> None:
    """``read()`` gives the same non-empty text twice; it makes a vocabulary of at least 2 tokens
    (``<unk>`` at 0 when ``reserve_unk``); the default prefix uses only tokens of the text; the
    class attributes have the right types."""
    text = corpus.read()
    assert isinstance(text, str) and text.strip(), "read() must return non-empty text"
    assert corpus.read() == text, "read() gave different text the second time"
    items = tokenize(text, tokens)
    vocab = Vocab(items, reserve_unk=corpus.reserve_unk)
    assert len(vocab) >= 2, f"the text has {len(vocab)} distinct {tokens} token(s); a model needs at least 2"
    if corpus.reserve_unk:
        assert vocab.unk == 0 and vocab.idx_to_token[0] == UNK, "reserve_unk corpora have <unk> at id 0"
    prefix = corpus.default_prefix
    assert isinstance(prefix, str), "default_prefix must be a str"
    if prefix:
        unknown = vocab.unknown(tokenize(prefix, tokens))
        assert not unknown, f"default_prefix {prefix!r} has tokens not in the text: {unknown}"
    assert 0 <= corpus.default_val_fraction < 1, "default_val_fraction must be in [0, 1)"
    assert isinstance(corpus.source, str), "source must be a str (a URL or a description)"
