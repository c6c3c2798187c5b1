"""Decoders: greedy = argmax, T = 0 is greedy, p^alpha equals temperature 1/alpha, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from seqkit.plugins import build_registry

from seqkit.errors import ConfigError
from seqkit_decoders.sampling import AlphaDecoder, GreedyDecoder, TemperatureDecoder

LOGITS = np.array([0.3, 2.0, -1.0, 1.2, 0.0])


def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    assert GreedyDecoder().choose(LOGITS, rng) == 1
    np.testing.assert_array_equal(GreedyDecoder().distribution(LOGITS), [0, 1, 0, 0, 0])


def test_temperature_zero_is_greedy():
    rng = np.random.default_rng(0)
    decoder = TemperatureDecoder(temperature=0)
    assert all(decoder.choose(LOGITS, rng) == 1 for _ in range(20))
    np.testing.assert_array_equal(decoder.distribution(LOGITS), GreedyDecoder().distribution(LOGITS))


def test_small_temperature_approaches_greedy():
    probs = TemperatureDecoder(temperature=0.01).distribution(LOGITS)
    assert probs[1] > 0.999


@pytest.mark.parametrize("alpha", [0.25, 0.5, 1.0, 2.0, 5.0])
def test_alpha_equals_temperature_one_over_alpha(alpha):
    np.testing.assert_allclose(
        AlphaDecoder(alpha=alpha).distribution(LOGITS),
        TemperatureDecoder(temperature=1 / alpha).distribution(LOGITS), rtol=1e-12)


def test_sampling_follows_the_distribution():
    decoder = AlphaDecoder(alpha=0.7)
    rng = np.random.default_rng(1)
    draws = np.bincount([decoder.choose(LOGITS, rng) for _ in range(20000)], minlength=5) / 20000
    np.testing.assert_allclose(draws, decoder.distribution(LOGITS), atol=0.015)


def test_same_seed_same_choices():
    decoder = TemperatureDecoder(temperature=1.5)
    a = [decoder.choose(LOGITS, r) for r in [np.random.default_rng(7)] for _ in range(50)]
    b = [decoder.choose(LOGITS, r) for r in [np.random.default_rng(7)] for _ in range(50)]
    assert a == b and len(set(a)) > 1


def test_bad_values_are_rejected():
    registry = build_registry()
    with pytest.raises(ConfigError, match="--temperature must be >= 0"):
        registry.create("decoder", "temperature", temperature=-0.5)
    with pytest.raises(ConfigError, match="--alpha must be > 0"):
        registry.create("decoder", "alpha", alpha=0)


# -- top-k, top-p, beam -----------------------------------------------------------------------
from seqkit.engine import sample  # noqa: E402
from seqkit.testing import MarkovModel  # noqa: E402
from seqkit_decoders.beam import BeamDecoder  # noqa: E402
from seqkit_decoders.truncation import TopKDecoder, TopPDecoder  # noqa: E402

PROBS = np.array([0.05, 0.5, 0.15, 0.3])
MANY = [np.random.default_rng(s).normal(size=9) * 3 for s in range(20)] + [np.array([1.0, 3.0, 3.0, 0.0])]


def test_top_k_keeps_exactly_the_k_most_likely():
    np.testing.assert_allclose(TopKDecoder(top_k=2).distribution(np.log(PROBS)), [0, 0.625, 0, 0.375])
    np.testing.assert_allclose(TopKDecoder(top_k=4).distribution(np.log(PROBS)), PROBS)
    np.testing.assert_allclose(TopKDecoder(top_k=99).distribution(np.log(PROBS)), PROBS)


def test_top_p_keeps_the_smallest_set_holding_p():
    np.testing.assert_allclose(TopPDecoder(top_p=0.5).distribution(np.log(PROBS)), [0, 1, 0, 0])
    np.testing.assert_allclose(TopPDecoder(top_p=0.7).distribution(np.log(PROBS)), [0, 0.625, 0, 0.375])
    np.testing.assert_allclose(TopPDecoder(top_p=0.9).distribution(np.log(PROBS)),
                               [0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95])
    np.testing.assert_allclose(TopPDecoder(top_p=1.0).distribution(np.log(PROBS)), PROBS)


@pytest.mark.parametrize("decoder", [TopKDecoder(top_k=1), TopPDecoder(top_p=1e-9), BeamDecoder(beam_width=1)],
                         ids=["top-k 1", "top-p 0", "beam 1"])
def test_the_limit_is_greedy(decoder):
    rng = np.random.default_rng(0)
    for logits in MANY:
        assert decoder.choose(logits, rng) == GreedyDecoder().choose(logits, rng)
        np.testing.assert_array_equal(decoder.distribution(logits), GreedyDecoder().distribution(logits))
    model = MarkovModel(9)
    starts = model.start([0, 4, 8])
    assert decoder.search(starts, model.advance, 12, rng) == GreedyDecoder().search(starts, model.advance, 12, rng)


def test_beam_finds_a_more_likely_continuation_than_greedy():
    # From token 0, "1" is the likeliest next token (0.5) but leads to a uniform step;
    # "2" (0.4) leads almost surely to "3": P(2, 3) = 0.396 > P(1, any) = 0.167.
    model = MarkovModel(4)
    model.table = np.log(np.array([[1e-9, 0.5, 0.4, 0.1], [0.25, 0.25, 0.25, 0.25],
                                   [0.003, 0.003, 0.004, 0.99], [0.25, 0.25, 0.25, 0.25]]))
    rng = np.random.default_rng(0)
    greedy = GreedyDecoder().search(model.start([0]), model.advance, 2, rng)[0]
    beam = BeamDecoder(beam_width=2).search(model.start([0]), model.advance, 2, rng)[0]
    assert greedy == [1, 0] and beam == [2, 3]
    assert model.log_likelihood(0, beam) > model.log_likelihood(0, greedy)


def test_beam_returns_the_most_likely_sequence_when_wide_enough():
    model = MarkovModel(3, seed=4)
    best = max(((a, b, c) for a in range(3) for b in range(3) for c in range(3)),
               key=lambda seq: model.log_likelihood(1, list(seq)))
    found = BeamDecoder(beam_width=9).search(model.start([1]), model.advance, 3, np.random.default_rng(0))[0]
    assert tuple(found) == best


@pytest.mark.parametrize("name, options", [("top-k", {"top_k": 0}), ("top-p", {"top_p": 0}),
                                           ("top-p", {"top_p": 1.5}), ("beam", {"beam_width": 0})])
def test_bad_search_options_are_rejected(name, options):
    with pytest.raises(ConfigError, match=f"--{next(iter(options)).replace('_', '-')} must be"):
        build_registry().create("decoder", name, **options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small trained run shared by the engine-level decoder tests."""
    import seqkit
    from conftest import SHARED_CORPORA

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQKIT_DATA", str(SHARED_CORPORA))
        mp.setenv("SEQKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        return seqkit.train(corpus="timemachine", max_tokens=3000, hidden=32, batch_size=4, num_steps=10, epochs=2,
                            predict_len=10, seed=0, lr=2.0)


@pytest.mark.parametrize("decoder, options", [("top-k", {"top_k": 1}), ("top-p", {"top_p": 1e-6}),
                                              ("beam", {"beam_width": 1})])
def test_limits_are_greedy_through_the_engine(trained, decoder, options):
    greedy = trained.predict("time ", length=30, decoder="greedy")
    assert trained.predict("time ", length=30, decoder=decoder, **options) == greedy
    assert trained.samples("time ", 3, length=30, decoder=decoder, **options) == [greedy] * 3


def test_wider_beams_are_at_least_as_likely_through_the_engine(trained):
    def log_likelihood(text: str) -> float:
        ids = trained.prefix_ids(text)
        state, total = trained.network.init_state(1), 0.0
        for i, token in enumerate(ids[:-1]):
            logits, state = trained.network.step(trained.params, np.array([token]), state)
            if i >= 4:  # scored from the first generated token ("time " is 5 characters)
                z = logits[0] - logits[0].max()
                total += z[ids[i + 1]] - np.log(np.exp(z).sum())
        return total

    texts = {w: trained.predict("time ", length=12, decoder="beam", beam_width=w) for w in (1, 4)}
    assert log_likelihood(texts[4]) >= log_likelihood(texts[1]) - 1e-9


def test_a_batch_of_samples_is_seeded_and_varied(trained):
    first = trained.samples("the ", 4, length=20, decoder="temperature", temperature=1.0, seed=3)
    assert first == trained.samples("the ", 4, length=20, decoder="temperature", temperature=1.0, seed=3)
    assert len(first) == 4 and len(set(first)) > 1 and all(t.startswith("the ") for t in first)
    assert first[0] == trained.predict("the ", length=20, decoder="temperature", temperature=1.0, seed=3)


def test_engine_sample_batch_of_one_matches_the_fast_path(trained):
    ids = trained.prefix_ids("the ")
    from seqkit.engine import _Batch

    fast = sample(trained.network, trained.params, ids, 15, TemperatureDecoder(1.0), np.random.default_rng(5), 1)
    logits, state = None, trained.network.init_state(1)
    for token in ids:
        logits, state = trained.network.step(trained.params, np.array([token]), state)
    advance = _Batch(trained.network, trained.params, state).advance
    # the default search over a batch of one draws exactly as the fast path does
    assert TemperatureDecoder(1.0).search(logits, advance, 15, np.random.default_rng(5)) == fast
