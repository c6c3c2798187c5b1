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
