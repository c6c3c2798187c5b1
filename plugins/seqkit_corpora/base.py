"""Shared pieces of the built-in corpora: option checks and downloaded-file corpora."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from seqkit.corpus import Corpus, CorpusOptions
from seqkit.data import locate
from seqkit.errors import ConfigError, DataError

NORMALIZE_CHOICES = ("default", "none")


def check_normalize(corpus: str, options: CorpusOptions) -> bool:
    """True for ``normalize="default"``, False for ``"none"``; a `ConfigError` otherwise."""
    if options.normalize not in NORMALIZE_CHOICES:
        raise ConfigError(
            f"unknown normalize value {options.normalize!r} for corpus {corpus!r}; choose one of: "
            + ", ".join(NORMALIZE_CHOICES))
    return options.normalize == "default"


def nonempty(text: str, origin: object) -> str:
    """``text`` unchanged, or a `DataError` when nothing but whitespace is left."""
    if not text.strip():
        raise DataError(f"{origin} is empty after normalisation")
    return text


class DownloadedCorpus(Corpus):
    """A corpus read from one known file: found locally or downloaded, then SHA-1 checked.

    Subclasses set ``filename``, ``url`` and ``sha1`` and implement `load`."""

    filename: ClassVar[str] = ""
    url: ClassVar[str] = ""
    sha1: ClassVar[str] = ""

    def path(self, options: CorpusOptions) -> Path:
        """The verified local copy of the corpus file (see `seqkit.data.locate`)."""
        return locate(self.filename, self.url, self.sha1, options.data_dir)

    def read(self, options: CorpusOptions) -> str:
        """The corpus text after this corpus' normalisation (raw with ``normalize="none"``)."""
        normalize = check_normalize(self.name, options)
        path = self.path(options)
        return nonempty(self.load(path, normalize), path)

    @abstractmethod
    def load(self, path: Path, normalize: bool) -> str:
        """The text of the verified file at ``path``, normalised when ``normalize`` is true."""
