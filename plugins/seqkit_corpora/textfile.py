"""The ``file`` corpus: any text file the user names."""

from __future__ import annotations

from pathlib import Path

from seqkit.corpus import Corpus, CorpusOptions
from seqkit.data import read_text_file, strip_gutenberg
from seqkit.errors import DataError
from seqkit_corpora.base import check_normalize, nonempty


class TextFile(Corpus):
    """A user's text file (``--corpus-file PATH``, ``--encoding``), Project Gutenberg header and
    footer stripped when present; otherwise kept as it is."""

    name = "file"
    description = "any text file (--corpus-file PATH); Project Gutenberg header/footer stripped"
    source = "user file"
    default_prefix = ""
    default_val_fraction = 0.0
    reserve_unk = False

    def read(self, options: CorpusOptions) -> str:
        """The file's text, BOM dropped; Gutenberg stripping too unless ``normalize="none"``."""
        normalize = check_normalize(self.name, options)
        if options.path is None:
            raise DataError("the file corpus needs a text file: pass --corpus-file PATH")
        path = Path(options.path).expanduser()
        text = read_text_file(path, options.encoding)
        if normalize:
            text = strip_gutenberg(text)
        return nonempty(text, path)
