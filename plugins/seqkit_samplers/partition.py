"""Minibatch schemes from the lesson: random subsequences and consecutive partitions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from seqkit import Option, Sampler

RANDOM_OFFSET = Option("random_offset", bool, True,
                       "Start each epoch's partition at a random offset (d2l 2nd ed.) or at 0 (d2l-zh, 1st ed.).")

if TYPE_CHECKING:
    import numpy as np


class RandomSampler(Sampler):
    """Random sampling: a fresh random offset per epoch (d2l 2nd edition; ``random_offset=False``
    starts at 0 as the 1st edition / d2l-zh did), non-overlapping subsequences of ``num_steps``
    tokens in shuffled order; the state is re-initialised for every minibatch."""

    name = "random"
    description = "random subsequences, state re-initialised per minibatch"
    carries_state = False
    options = (RANDOM_OFFSET,)

    def __init__(self, random_offset: bool = True) -> None:
        self.random_offset = random_offset

    def batches(self, tokens, batch_size, num_steps, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import numpy as np
        offset = int(rng.integers(0, num_steps)) if self.random_offset else 0
        corpus = np.asarray(tokens, dtype=np.int64)[offset:]
        num_subseqs = (len(corpus) - 1) // num_steps
        starts = np.arange(0, num_subseqs * num_steps, num_steps)
        rng.shuffle(starts)
        window = np.arange(num_steps)
        for i in range(0, (num_subseqs // batch_size) * batch_size, batch_size):
            index = starts[i:i + batch_size, None] + window
            yield corpus[index], corpus[index + 1]

    def min_batches(self, num_tokens: int, batch_size: int, num_steps: int) -> int:
        worst = num_steps - 1 if self.random_offset else 0
        return max(0, (num_tokens - worst - 1) // num_steps) // batch_size


class SequentialSampler(Sampler):
    """Sequential partitioning: the corpus (from a random offset per epoch, or from 0 with
    ``random_offset=False``) is split into ``batch_size`` parallel streams read ``num_steps`` at a
    time, so minibatch k+1 continues minibatch k and the hidden state carries over (truncated BPTT)."""

    name = "sequential"
    description = "consecutive partitions, state carried across minibatches (truncated BPTT)"
    carries_state = True
    options = (RANDOM_OFFSET,)

    def __init__(self, random_offset: bool = True) -> None:
        self.random_offset = random_offset

    def batches(self, tokens, batch_size, num_steps, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import numpy as np
        offset = int(rng.integers(0, num_steps + 1)) if self.random_offset else 0
        corpus = np.asarray(tokens, dtype=np.int64)
        num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
        xs = corpus[offset:offset + num_tokens].reshape(batch_size, -1)
        ys = corpus[offset + 1:offset + 1 + num_tokens].reshape(batch_size, -1)
        for i in range(0, (xs.shape[1] // num_steps) * num_steps, num_steps):
            yield xs[:, i:i + num_steps], ys[:, i:i + num_steps]

    def min_batches(self, num_tokens: int, batch_size: int, num_steps: int) -> int:
        worst = num_steps if self.random_offset else 0
        return max(0, (num_tokens - worst - 1) // batch_size) // num_steps
