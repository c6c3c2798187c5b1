"""Shared pieces of the built-in corpora: downloaded-file corpora and the empty-text check."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from seqkit.corpus import DATA_DIR, NORMALIZE, Corpus
from seqkit.data import locate
from seqkit.errors import DataError


def nonempty(text: str, origin: object) -> str:
    """``text`` unchanged, or a `DataError` when nothing but whitespace is left."""
    if not text.strip():
        raise DataError(f"{origin} is empty after normalisation")
    return text


class DownloadedCorpus(Corpus):
    """A corpus read from one known file: found locally or downloaded, then SHA-1 checked.

    Subclasses set ``filename``, ``url`` and ``sha1`` and implement `load`. Options: ``data_dir``
    (a local folder to look in before downloading) and ``normalize``."""

    filename: ClassVar[str] = ""
    url: ClassVar[str] = ""
    sha1: ClassVar[str] = ""
    options = (NORMALIZE, DATA_DIR)

    def __init__(self, normalize: str = "default", data_dir: str | Path | None = None) -> None:
        self.normalize = normalize
        self.data_dir = Path(data_dir) if data_dir else None

    def path(self) -> Path:
        """The verified local copy of the corpus file (see `seqkit.data.locate`)."""
        return locate(self.filename, self.url, self.sha1, self.data_dir)

    def read(self) -> str:
        """The corpus text after this corpus' normalisation (raw with ``normalize="none"``)."""
        path = self.path()
        return nonempty(self.load(path, self.normalize), path)

    @abstractmethod
    def load(self, path: Path, normalize: str) -> str:
        """The text of the verified file at ``path``, normalised by the rule named ``normalize``."""
