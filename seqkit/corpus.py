"""The `Corpus` interface: where text comes from and how it is normalised before tokenisation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class CorpusOptions:
    """Settings a corpus reads: ``data_dir`` (a local folder to look in before downloading, or
    None for the default search), ``normalize`` (``"default"`` = the corpus' own rule, or
    ``"none"`` = raw text), ``encoding`` and ``path`` (for corpora that read a user file)."""

    data_dir: Path | None = None
    normalize: str = "default"
    encoding: str = "utf-8"
    path: Path | None = None


class Corpus(ABC):
    """A named text source.

    ``read`` returns the text ready for tokenisation. Class attributes give the per-corpus
    defaults the CLI uses: ``default_prefix`` for samples, ``default_val_fraction`` for the held-out
    tail, and ``reserve_unk`` (whether the vocabulary gets an ``<unk>`` token at index 0).
    ``source`` says where the text comes from (a URL or "user file"), shown by ``seqkit plugins``.
    Raise `seqkit.errors.DataError` with a message that says what to do when the text cannot be had.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""
    default_prefix: ClassVar[str] = ""
    default_val_fraction: ClassVar[float] = 0.0
    reserve_unk: ClassVar[bool] = False

    @abstractmethod
    def read(self, options: CorpusOptions) -> str:
        """The corpus text after this corpus' normalisation (or raw with ``normalize="none"``)."""
