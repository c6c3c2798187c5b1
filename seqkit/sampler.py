"""The `Sampler` interface: token ids -> (X, Y) minibatches, and the hidden-state policy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Iterator

from seqkit.options import Option

if TYPE_CHECKING:
    import numpy as np


class Sampler(ABC):
    """Cuts a token-id sequence into minibatches of shape (batch_size, num_steps).

    ``Y`` is ``X`` shifted by one token. ``carries_state`` says whether the hidden state at the end
    of one minibatch is the right start for the next (sequential partitioning) or must be
    re-initialised (random sampling). All randomness comes from the ``rng`` passed in.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    carries_state: ClassVar[bool] = False

    @abstractmethod
    def batches(
        self, tokens: np.ndarray, batch_size: int, num_steps: int, rng: np.random.Generator
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the (X, Y) int64 minibatches of one epoch."""

    @abstractmethod
    def min_batches(self, num_tokens: int, batch_size: int, num_steps: int) -> int:
        """The fewest minibatches an epoch can have for this many tokens (0 = corpus too short)."""
