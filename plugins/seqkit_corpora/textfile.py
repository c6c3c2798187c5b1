"""The ``file`` corpus: any text file the user names."""

from __future__ import annotations

from pathlib import Path

from seqkit.corpus import NORMALIZE, Corpus
from seqkit.data import read_text_file, strip_gutenberg
from seqkit.errors import DataError
from seqkit.options import Option
from seqkit_corpora.base import nonempty


class TextFile(Corpus):
    """A user's text file (``--corpus-file PATH``, ``--encoding``), Project Gutenberg header and
    footer stripped when present (``--normalize default``); otherwise kept as it is."""

    name = "file"
    description = "any text file (--corpus-file PATH); Project Gutenberg header/footer stripped"
    source = "user file"
    default_prefix = ""
    default_val_fraction = 0.0
    reserve_unk = False
    options = (
        Option("corpus_file", str, None, "The text file to read.", nullable=True, path=True, resumable=True),
        Option("encoding", str, "utf-8", "Encoding of the text file."),
        NORMALIZE,
    )

    def __init__(self, corpus_file: str | Path | None = None, encoding: str = "utf-8",
                 normalize: str = "default") -> None:
        self.path = Path(corpus_file).expanduser() if corpus_file else None
        self.encoding = encoding
        self.normalize = normalize

    def read(self) -> str:
        """The file's text, BOM dropped; Gutenberg stripping too unless ``normalize="none"``."""
        if self.path is None:
            raise DataError("the file corpus needs a text file: pass --corpus-file PATH")
        text = read_text_file(self.path, self.encoding)
        if self.normalize != "none":
            text = strip_gutenberg(text)
        return nonempty(text, self.path)
