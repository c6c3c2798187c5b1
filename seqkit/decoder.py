"""The `Decoder` interface: picks the next token from the model's output, or owns a whole search."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, ClassVar

from seqkit.options import Option

Advance = Callable[["np.ndarray", "np.ndarray"], "np.ndarray"]
"""``advance(rows, tokens) -> logits``: continue sequence ``rows[i]`` of the current batch with token
``tokens[i]`` (both int arrays of length k); the k continued sequences become the new batch, in
that order, and their next-token logits come back as a float array of shape (k, V). A row may be
named several times (beam search copies a hypothesis) or not at all (it is dropped)."""

if TYPE_CHECKING:
    import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    import numpy as np
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, in float64."""
    import numpy as np
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def row_generators(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``rng`` and n - 1 independent generators derived from its state without advancing it
    (jumped-ahead copies where the bit generator can jump, else seeded from a copy's draws)."""
    import numpy as np
    bitgen = rng.bit_generator
    if hasattr(bitgen, "jumped"):
        return [rng] + [np.random.Generator(bitgen.jumped(i)) for i in range(1, n)]
    copy = np.random.Generator(type(bitgen)())
    copy.bit_generator.state = bitgen.state
    return [rng] + [np.random.default_rng(seed) for seed in copy.integers(0, 2**63, size=n - 1)]


class Decoder(ABC):
    """Chooses token ids from a model's logits (NumPy float arrays over the vocabulary).

    A per-token decoder implements ``distribution(logits (V,)) -> probabilities (V,)``;
    ``choose`` draws from it with the ``rng`` it is given, so a seed fixes the text. A decoder that
    needs the whole search (beam search) overrides ``search``, which gets a way to advance a batch
    of sequences. Constructor keyword arguments are the decoder's declared ``options``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def distribution(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities (float64, shape (V,), summing to 1) this decoder samples the next token
        from, given one step's logits of shape (V,). For a search decoder: its per-step choice."""

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> int:
        """Draw one token id from `distribution` by inverting its CDF with one uniform draw."""
        import numpy as np
        probs = self.distribution(logits)
        index = int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"))
        return min(index, len(probs) - 1)

    def search(self, logits: np.ndarray, advance: Advance, length: int, rng: np.random.Generator) -> list[list[int]]:
        """Generate ``length`` tokens for each of n sequences whose next-token ``logits`` (n, V) are
        given; ``advance`` feeds chosen tokens (see `Advance`). Returns n lists of token ids.

        The default calls `choose` for each sequence at each step and advances every sequence with
        its own token. Sequence 0 draws from ``rng`` itself and sequence i from ``rng`` jumped ahead
        i times, so a seed fixes the text and the first of n samples is the single sample.
        Override it to own the search."""
        import numpy as np
        n = len(logits)
        out: list[list[int]] = [[] for _ in range(n)]
        rows = np.arange(n)
        rngs = row_generators(rng, n)
        for i in range(length):
            tokens = np.array([self.choose(logits[r], rngs[r]) for r in range(n)], dtype=np.int64)
            for r in range(n):
                out[r].append(int(tokens[r]))
            if i + 1 < length:
                logits = advance(rows, tokens)
        return out

    @classmethod
    def owns_search(cls) -> bool:
        """Whether this decoder overrides `search` (the engine then always gives it a batch)."""
        return cls.search is not Decoder.search
