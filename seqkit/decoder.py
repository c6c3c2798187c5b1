"""The `Decoder` interface: picks the next token from the model's output."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from seqkit.options import Option


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D array, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


class Decoder(ABC):
    """Chooses a token id from one step's logits (a 1-D NumPy array over the vocabulary).

    ``distribution`` is the probability vector the decoder samples from (one-hot for greedy);
    ``choose`` draws from it with the ``rng`` it is given, so a seed fixes the text. Constructor
    keyword arguments are filled from the run options of the same name (``temperature``, ``alpha``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def distribution(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities (float64, summing to 1) this decoder samples the next token from."""

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> int:
        """Draw one token id from `distribution` by inverting its CDF with one uniform draw."""
        probs = self.distribution(logits)
        index = int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"))
        return min(index, len(probs) - 1)
