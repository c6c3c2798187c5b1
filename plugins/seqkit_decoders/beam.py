"""Beam search: keep the ``beam_width`` most likely partial continuations, return the best."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seqkit import Decoder, Option
from seqkit.decoder import Advance, log_softmax
from seqkit_decoders.sampling import GreedyDecoder

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Hypothesis:
    """One partial continuation: its tokens, total log-probability and row in the current batch."""

    tokens: list[int]
    score: float
    row: int


class BeamDecoder(Decoder):
    """Beam search for the most likely continuation of a fixed length (width 1 is greedy).

    Deterministic: ``rng`` is not used. Every sample of a batch gets the best continuation of its
    own prefix."""

    name = "beam"
    description = "beam search: the most likely continuation, --beam-width hypotheses kept"
    options = (Option("beam_width", int, 4, "Hypotheses kept at each step (1 = greedy).", ge=1),)

    def __init__(self, beam_width: int = 4) -> None:
        self.beam_width = int(beam_width)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        """A single step of beam search picks the most likely token."""
        return GreedyDecoder().distribution(logits)

    def search(self, logits: np.ndarray, advance: Advance, length: int, rng: np.random.Generator) -> list[list[int]]:
        import numpy as np
        beams = [[Hypothesis([], 0.0, r)] for r in range(len(logits))]
        for i in range(length):
            log_probs = log_softmax(logits)
            beams = [self._extend(hyps, log_probs) for hyps in beams]
            if i + 1 == length:
                break
            rows, tokens = [], []
            for hyps in beams:
                for hyp in hyps:
                    rows.append(hyp.row)
                    tokens.append(hyp.tokens[-1])
                    hyp.row = len(rows) - 1
            logits = advance(np.array(rows, dtype=np.int64), np.array(tokens, dtype=np.int64))
        return [hyps[0].tokens for hyps in beams]

    def _extend(self, hyps: list[Hypothesis], log_probs: np.ndarray) -> list[Hypothesis]:
        """The ``beam_width`` best one-token extensions of ``hyps``, best first (ties: earlier
        hypothesis, then lower token id)."""
        import numpy as np
        vocab = log_probs.shape[1]
        scores = np.concatenate([hyp.score + log_probs[hyp.row] for hyp in hyps])
        best = np.argsort(-scores, kind="stable")[: self.beam_width]
        return [Hypothesis(hyps[k // vocab].tokens + [int(k % vocab)], float(scores[k]), hyps[k // vocab].row)
                for k in best]
