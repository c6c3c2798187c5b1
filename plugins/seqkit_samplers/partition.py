"""Minibatch schemes from the lesson: random subsequences and consecutive partitions."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from seqkit import Sampler


class RandomSampler(Sampler):
    """Random sampling: a fresh random offset per epoch, non-overlapping subsequences of
    ``num_steps`` tokens in shuffled order; the state is re-initialised for every minibatch."""

    name = "random"
    description = "random subsequences, state re-initialised per minibatch"
    carries_state = False

    def batches(self, tokens, batch_size, num_steps, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        offset = int(rng.integers(0, num_steps))
        corpus = np.asarray(tokens, dtype=np.int64)[offset:]
        num_subseqs = (len(corpus) - 1) // num_steps
        starts = np.arange(0, num_subseqs * num_steps, num_steps)
        rng.shuffle(starts)
        window = np.arange(num_steps)
        for i in range(0, (num_subseqs // batch_size) * batch_size, batch_size):
            index = starts[i:i + batch_size, None] + window
            yield corpus[index], corpus[index + 1]

    def min_batches(self, num_tokens: int, batch_size: int, num_steps: int) -> int:
        return max(0, (num_tokens - num_steps) // num_steps) // batch_size


class SequentialSampler(Sampler):
    """Sequential partitioning: the corpus (from a random offset) is split into ``batch_size``
    parallel streams read ``num_steps`` at a time, so minibatch k+1 continues minibatch k and
    the hidden state carries over (truncated BPTT)."""

    name = "sequential"
    description = "consecutive partitions, state carried across minibatches (truncated BPTT)"
    carries_state = True

    def batches(self, tokens, batch_size, num_steps, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        offset = int(rng.integers(0, num_steps + 1))
        corpus = np.asarray(tokens, dtype=np.int64)
        num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
        xs = corpus[offset:offset + num_tokens].reshape(batch_size, -1)
        ys = corpus[offset + 1:offset + 1 + num_tokens].reshape(batch_size, -1)
        for i in range(0, (xs.shape[1] // num_steps) * num_steps, num_steps):
            yield xs[:, i:i + num_steps], ys[:, i:i + num_steps]

    def min_batches(self, num_tokens: int, batch_size: int, num_steps: int) -> int:
        return ((num_tokens - num_steps - 1) // batch_size) // num_steps if num_tokens > num_steps else 0
