"""Truncated sampling: among the k most likely tokens (top-k), or the smallest set holding
probability p (top-p, nucleus sampling; Holtzman et al., 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqkit import Decoder, Option
from seqkit.decoder import softmax

if TYPE_CHECKING:
    import numpy as np


def _ranked(probs: np.ndarray) -> np.ndarray:
    """Token ids from most to least likely; ties keep the lower id first (as argmax does)."""
    import numpy as np
    return np.argsort(-probs, kind="stable")


class TopKDecoder(Decoder):
    """Sample from the ``top_k`` most likely tokens, renormalised (k = 1 is greedy)."""

    name = "top-k"
    description = "sample among the --top-k most likely tokens"
    options = (Option("top_k", int, 10, "How many of the most likely tokens to sample from (1 = greedy).", ge=1),)

    def __init__(self, top_k: int = 10) -> None:
        self.top_k = int(top_k)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        import numpy as np
        probs = softmax(logits)
        keep = _ranked(probs)[: self.top_k]
        out = np.zeros_like(probs)
        out[keep] = probs[keep]
        return out / out.sum()


class TopPDecoder(Decoder):
    """Sample from the fewest most likely tokens whose probabilities sum to at least ``top_p``,
    renormalised (the most likely token is always kept, so p -> 0 is greedy)."""

    name = "top-p"
    description = "nucleus sampling: the most likely tokens holding --top-p of the probability"
    options = (Option("top_p", float, 0.9, "Probability mass to sample from (small = greedy, 1 = all tokens).",
                      gt=0, le=1),)

    def __init__(self, top_p: float = 0.9) -> None:
        self.top_p = float(top_p)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        import numpy as np
        probs = softmax(logits)
        order = _ranked(probs)
        mass = np.cumsum(probs[order])
        count = int(np.searchsorted(mass, self.top_p * mass[-1], side="left")) + 1
        keep = order[: min(count, len(order))]
        out = np.zeros_like(probs)
        out[keep] = probs[keep]
        return out / out.sum()
