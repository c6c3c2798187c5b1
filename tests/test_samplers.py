"""Sampler semantics: random vs sequential partitions and the state policy."""

from __future__ import annotations

import numpy as np
import pytest

from seqkit_samplers.partition import RandomSampler, SequentialSampler

TOKENS = np.arange(1000, dtype=np.int64)


def collect(sampler, batch_size=4, num_steps=7, seed=0, tokens=TOKENS):
    return list(sampler.batches(tokens, batch_size, num_steps, np.random.default_rng(seed)))


@pytest.mark.parametrize("sampler", [RandomSampler(), SequentialSampler()])
def test_targets_are_inputs_shifted_by_one(sampler):
    for X, Y in collect(sampler):
        assert X.shape == Y.shape == (4, 7)
        np.testing.assert_array_equal(Y, X + 1)  # tokens are 0..999, so the next token is X + 1


def test_sequential_minibatches_continue_each_other_row_by_row():
    batches = collect(SequentialSampler())
    assert SequentialSampler.carries_state
    for (X0, _), (X1, _) in zip(batches, batches[1:]):
        np.testing.assert_array_equal(X1[:, 0], X0[:, -1] + 1)
    rows = np.concatenate([X for X, _ in batches], axis=1)
    for row in rows:
        np.testing.assert_array_equal(np.diff(row), 1)  # each row is one contiguous stream


def test_random_subsequences_are_disjoint_aligned_and_shuffled():
    batches = collect(RandomSampler(), seed=3)
    assert not RandomSampler.carries_state
    starts = np.concatenate([X[:, 0] for X, _ in batches])
    assert len(set(starts.tolist())) == len(starts)
    assert len({int(s) % 7 for s in starts}) == 1  # one random offset per epoch
    assert not np.all(np.diff(starts) > 0)  # shuffled, not in corpus order
    for X, _ in batches:
        np.testing.assert_array_equal(np.diff(X, axis=1), 1)


@pytest.mark.parametrize("sampler", [RandomSampler(), SequentialSampler()])
def test_seeded_reproducible_and_seed_dependent(sampler):
    a, b, c = collect(sampler, seed=1), collect(sampler, seed=1), collect(sampler, seed=2)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c)) or len(a) != len(c)


@pytest.mark.parametrize("sampler", [RandomSampler(), SequentialSampler()])
def test_min_batches_is_the_fewest_over_offsets(sampler):
    for n in (20, 57, 300, 1000):
        counts = [len(collect(sampler, seed=s, tokens=np.arange(n))) for s in range(40)]
        assert min(counts) == sampler.min_batches(n, 4, 7)


def test_too_short_corpus_gives_no_batches():
    assert SequentialSampler().min_batches(10, 4, 7) == 0
    assert RandomSampler().min_batches(10, 4, 7) == 0


@pytest.mark.parametrize("sampler", [RandomSampler(random_offset=False), SequentialSampler(random_offset=False)])
def test_without_random_offset_every_epoch_starts_at_zero(sampler):
    for seed in range(5):
        first = collect(sampler, seed=seed)
        if isinstance(sampler, SequentialSampler):
            assert first[0][0][0, 0] == 0  # the first stream starts at the first token
        else:
            starts = np.concatenate([X[:, 0] for X, _ in first])
            assert all(int(s) % 7 == 0 for s in starts)  # subsequences aligned on 0, as in d2l-zh
    for n in (20, 57, 300, 1000):
        assert len(collect(sampler, tokens=np.arange(n))) == sampler.min_batches(n, 4, 7)
