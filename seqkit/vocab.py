"""Tokenisation and the token <-> id vocabulary."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from seqkit.errors import ConfigError

UNK = "<unk>"
TOKENIZERS = ("char", "word")


def tokenize(text: str, mode: str) -> list[str]:
    """Characters (``"char"``) or whitespace-separated words (``"word"``)."""
    if mode == "char":
        return list(text)
    if mode == "word":
        return text.split()
    raise ConfigError(f"unknown --tokens {mode!r}; choose one of: {', '.join(TOKENIZERS)}")


def detokenize(tokens: Iterable[str], mode: str) -> str:
    """Inverse of `tokenize` (words are joined by single spaces)."""
    return ("" if mode == "char" else " ").join(tokens)


class Vocab:
    """Tokens ordered by descending frequency (ties by token), ``<unk>`` first when reserved."""

    def __init__(self, tokens: Sequence[str], reserve_unk: bool = False) -> None:
        counts = Counter(tokens)
        ordered = sorted(counts, key=lambda tok: (-counts[tok], tok))
        self.idx_to_token: list[str] = ([UNK] if reserve_unk else []) + [t for t in ordered if t != UNK]
        self.token_to_idx = {tok: i for i, tok in enumerate(self.idx_to_token)}

    @classmethod
    def from_list(cls, idx_to_token: Sequence[str]) -> "Vocab":
        """Rebuild a vocabulary from its saved token list."""
        vocab = cls([])
        vocab.idx_to_token = list(idx_to_token)
        vocab.token_to_idx = {tok: i for i, tok in enumerate(vocab.idx_to_token)}
        return vocab

    def __len__(self) -> int:
        return len(self.idx_to_token)

    @property
    def unk(self) -> int | None:
        """Id of ``<unk>``, or None when the vocabulary has none."""
        return self.token_to_idx.get(UNK)

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """Distinct tokens not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.token_to_idx))

    def encode(self, tokens: Sequence[str], map_unknown: bool = False) -> np.ndarray:
        """Token ids as int64; unknown tokens map to ``<unk>`` when asked and available."""
        if map_unknown and self.unk is not None:
            return np.fromiter((self.token_to_idx.get(t, self.unk) for t in tokens), np.int64, len(tokens))
        return np.fromiter((self.token_to_idx[t] for t in tokens), np.int64, len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.idx_to_token[int(i)] for i in ids]
