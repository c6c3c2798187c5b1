"""The decoder contract: a distribution that sums to 1, choices it allows, seeded reproducibility,
and a `search` that returns n sequences of the asked length.

::

    from seqkit.testing import check_decoder
    def test_my_decoder_keeps_the_contract():
        check_decoder(MyDecoder(top_k=3))
"""

from __future__ import annotations

import numpy as np

from seqkit.decoder import Decoder

VOCAB = 7


def sample_logits(vocab_size: int = VOCAB, seed: int = 0) -> list[np.ndarray]:
    """Logits that find edge cases: random, tied, one huge gap, all equal, float32."""
    rng = np.random.default_rng(seed)
    tied = np.zeros(vocab_size)
    tied[[1, 3]] = 2.0
    gap = rng.normal(size=vocab_size)
    gap[2] = 1e4
    return [rng.normal(size=vocab_size) * 2, tied, gap, np.full(vocab_size, -3.0),
            rng.normal(size=vocab_size).astype(np.float32)]


def check_distribution(decoder: Decoder, vocab_size: int = VOCAB) -> None:
    """``distribution`` gives a finite float vector of shape (V,), non-negative, summing to 1."""
    for logits in sample_logits(vocab_size):
        probs = np.asarray(decoder.distribution(logits))
        assert probs.shape == (vocab_size,), f"distribution gave shape {probs.shape}, expected ({vocab_size},)"
        assert np.all(np.isfinite(probs)) and np.all(probs >= 0), f"distribution gave {probs} for {logits}"
        assert abs(probs.sum() - 1.0) <= 1e-9, f"distribution sums to {probs.sum()!r}, not 1, for {logits}"


def check_choose(decoder: Decoder, vocab_size: int = VOCAB, draws: int = 2000, seed: int = 0) -> None:
    """``choose`` returns ints the distribution allows, the same ones from the same seed, and (over
    ``draws`` draws) in the distribution's proportions."""
    for logits in sample_logits(vocab_size):
        probs = decoder.distribution(logits)
        picks = [decoder.choose(logits, rng) for rng in [np.random.default_rng(seed)] for _ in range(draws)]
        again = [decoder.choose(logits, rng) for rng in [np.random.default_rng(seed)] for _ in range(draws)]
        assert picks == again, "choose gave different tokens from the same seed: draw only from the rng given"
        assert all(isinstance(p, (int, np.integer)) and 0 <= p < vocab_size for p in picks), \
            "choose must return token ids in [0, V)"
        assert all(probs[p] > 0 for p in picks), "choose picked a token its distribution gives probability 0"
        freq = np.bincount(picks, minlength=vocab_size) / draws
        assert np.max(np.abs(freq - probs)) < 0.05, \
            f"choose's frequencies {np.round(freq, 3)} do not follow distribution {np.round(probs, 3)}"


class MarkovModel:
    """A toy model for `search`: the next-token logits depend only on the last token, so every
    sequence's likelihood is known exactly. ``advance`` keeps the batch like the engine does."""

    def __init__(self, vocab_size: int = VOCAB, seed: int = 0) -> None:
        self.table = np.random.default_rng(seed).normal(size=(vocab_size, vocab_size)) * 2
        self.calls = 0

    def start(self, tokens: list[int]) -> np.ndarray:
        """Logits after each start token: the first argument of ``search``."""
        return self.table[np.asarray(tokens)]

    def advance(self, rows: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """`seqkit.decoder.Advance`: the next-token logits (k, V) after each of ``tokens``."""
        self.calls += 1
        assert len(rows) == len(tokens) and len(rows) > 0, "advance needs rows and tokens of the same length"
        return self.table[np.asarray(tokens)]

    def log_likelihood(self, start: int, tokens: list[int]) -> float:
        """log P(tokens | start) under the model."""
        total, last = 0.0, start
        for token in tokens:
            z = self.table[last]
            total += z[token] - z.max() - np.log(np.exp(z - z.max()).sum())
            last = token
        return float(total)


def check_search(decoder: Decoder, vocab_size: int = VOCAB, length: int = 6, seed: int = 0) -> None:
    """``search`` returns one list of ``length`` valid ids per sequence, the same from the same
    seed; of length 0, one empty list per sequence without advancing."""
    model = MarkovModel(vocab_size)
    starts = [0, 3, 3]
    results = [decoder.search(model.start(starts), model.advance, length, np.random.default_rng(seed))
               for _ in range(2)]
    assert results[0] == results[1], "search gave different tokens from the same seed"
    out = results[0]
    assert isinstance(out, list) and len(out) == len(starts), f"search must return {len(starts)} lists, got {out!r}"
    for seq in out:
        assert len(seq) == length and all(isinstance(t, (int, np.integer)) and 0 <= t < vocab_size for t in seq), \
            f"search returned {seq!r}: expected {length} token ids in [0, {vocab_size})"
    calls = model.calls
    assert decoder.search(model.start([1]), model.advance, 0, np.random.default_rng(seed)) == [[]], \
        "search of length 0 must return one empty list per sequence"
    assert model.calls == calls, "search of length 0 must not advance the batch"


def check_decoder(decoder: Decoder, vocab_size: int = VOCAB) -> None:
    """The whole decoder contract."""
    check_distribution(decoder, vocab_size)
    check_choose(decoder, vocab_size)
    check_search(decoder, vocab_size)
