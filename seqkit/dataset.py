"""From a corpus name and options to token ids: read, tokenise, cut, build the vocabulary, split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqkit.config import RunConfig
from seqkit.corpus import Corpus
from seqkit.errors import ConfigError, DataError
from seqkit.vocab import Vocab, tokenize

DEFAULT_PREFIX_TOKENS = 10


@dataclass
class Dataset:
    """Token ids for training and (optional) validation, with the vocabulary and default prefix."""

    vocab: Vocab
    train_ids: np.ndarray
    val_ids: np.ndarray
    tokens: str
    default_prefix: str
    val_fraction: float


def load_dataset(config: RunConfig, corpus: Corpus) -> Dataset:
    """Read ``corpus`` and turn it into a `Dataset` as ``config`` says, checking it is long enough."""
    text = corpus.read()
    tokens = tokenize(text, config.tokens)
    if config.max_tokens is not None:
        tokens = tokens[: config.max_tokens]
    if len(tokens) < 2:
        raise DataError(f"corpus {config.corpus!r} has fewer than 2 tokens after tokenisation; nothing to learn")
    vocab = Vocab(tokens, reserve_unk=corpus.reserve_unk)
    ids = vocab.encode(tokens)
    val_fraction = corpus.default_val_fraction if config.val_fraction is None else config.val_fraction
    split = len(ids) - int(round(len(ids) * val_fraction))
    train_ids, val_ids = ids[:split], ids[split:]
    if val_fraction > 0 and len(val_ids) < 2:
        raise ConfigError(f"--val-fraction {val_fraction} leaves fewer than 2 validation tokens; raise it or use 0")
    prefix = corpus.default_prefix or _first_tokens(tokens, config.tokens)
    return Dataset(vocab, train_ids, val_ids, config.tokens, prefix, val_fraction)


def _first_tokens(tokens: list[str], mode: str) -> str:
    head = tokens[:DEFAULT_PREFIX_TOKENS if mode == "char" else 2]
    return ("" if mode == "char" else " ").join(head)
