"""The lesson's corpora, downloaded on first use: The Time Machine, Jay Chou lyrics, tiny Shakespeare."""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

from seqkit.corpus import DATA_DIR, NORMALIZE
from seqkit.data import read_text_file
from seqkit.errors import DataError
from seqkit_corpora.base import DownloadedCorpus

_NON_LETTERS = re.compile("[^A-Za-z]+")
_NON_LOWER = re.compile("[^a-z]+")


class TimeMachine(DownloadedCorpus):
    """H. G. Wells' The Time Machine, letters and spaces only, lower case (the d2l lesson's text)."""

    name = "timemachine"
    description = "H. G. Wells, The Time Machine (d2l's copy); lower-case letters and spaces"
    filename = "timemachine.txt"
    url = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
    source = url
    sha1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
    default_prefix = "time traveller"
    default_val_fraction = 0.0
    reserve_unk = True
    # the whole book in a few minutes: the lesson's SGD, halved every 25 epochs (no late blow-up)
    default_options = {"epochs": 100, "lr_decay": 0.5, "lr_decay_every": 25, "log_every": 5, "sample_every": 25}
    options = (
        dataclasses.replace(NORMALIZE, choices=("default", "d2l-2019", "none"),
                            help="default: the current lesson's rule (per line, non-letters to one space, "
                                 "trimmed, lower case, lines joined); d2l-2019: the 2019 lesson's (lower case, "
                                 "non-letters to spaces, whitespace collapsed over the whole text); none: raw."),
        DATA_DIR,
    )

    def load(self, path: Path, normalize: str) -> str:
        """``default``: per line, runs of non-letters become one space, trimmed, lower-cased; lines
        joined with nothing between them (as the lesson does). ``d2l-2019``: lower-cased, every
        run of non-letters (line breaks included) one space."""
        text = read_text_file(path)
        if normalize == "none":
            return text
        if normalize == "d2l-2019":
            return _NON_LOWER.sub(" ", text.lower()).strip()
        return "".join(_NON_LETTERS.sub(" ", line).strip().lower() for line in text.splitlines())


class Lyrics(DownloadedCorpus):
    """Jay Chou's song lyrics in Chinese (d2l-zh's teaching copy), line breaks turned into spaces."""

    name = "lyrics"
    description = "Jay Chou lyrics (d2l-zh's copy); Chinese characters, line breaks as spaces"
    filename = "jaychou_lyrics.txt.zip"
    member = "jaychou_lyrics.txt"
    url = "http://d2l-data.s3-accelerate.amazonaws.com/jaychou_lyrics.txt.zip"
    source = url
    sha1 = "9529987e701a4f37048ab778270a5dde9a762a0b"
    default_prefix = "分开"
    default_val_fraction = 0.0
    reserve_unk = False
    # the whole text in about two minutes: 2,582 characters make one-hot inputs and SGD slow
    # learners (perplexity 82 after 40 epochs with the lesson's lr 100); Adam on a 64-wide embedding
    # reaches 14 (the `jaychou` preset is the lesson itself)
    default_options = {"hidden": 256, "embedding": 64, "optimizer": "adam", "lr": 0.003, "epochs": 40,
                       "lr_decay": 0.5, "lr_decay_every": 15, "log_every": 5, "sample_every": 10}

    def load(self, path: Path, normalize: str) -> str:
        """The zip member ``jaychou_lyrics.txt`` as UTF-8; ``\\n`` and ``\\r`` each become a space."""
        try:
            with zipfile.ZipFile(path) as archive:
                data = archive.read(self.member)
        except KeyError:
            raise DataError(
                f"{path} has no {self.member}: replace it with the file from {self.url}") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(
                f"{path} is not a readable zip file ({exc}): replace it with the file from {self.url}"
            ) from exc
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{self.member} in {path} is not valid UTF-8 at byte offset {exc.start}: replace "
                f"it with the file from {self.url}") from None
        if normalize == "none":
            return text
        return text.replace("\n", " ").replace("\r", " ")


class Shakespeare(DownloadedCorpus):
    """Tiny Shakespeare (karpathy/char-rnn): about 1.1 M characters of the plays, kept as they are."""

    name = "shakespeare"
    description = "tiny Shakespeare (karpathy/char-rnn); raw characters"
    filename = "tinyshakespeare.txt"
    url = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    source = url
    sha1 = "04486597058d11dcc2c556b1d0433891eb639d2e"
    default_prefix = "ROMEO:"
    default_val_fraction = 0.1
    reserve_unk = False
    # held-out quality in a few minutes: Adam on embedded characters from PyTorch's init, halved every 4 epochs
    default_options = {"optimizer": "adam", "lr": 0.002, "init": "pytorch", "embedding": 64, "hidden": 512,
                       "batch_size": 64, "num_steps": 64, "epochs": 8, "lr_decay": 0.5, "lr_decay_every": 4, "log_every": 1,
                       "sample_every": 2}

    def load(self, path: Path, normalize: str) -> str:
        """The raw text: this corpus has no normalisation of its own."""
        return read_text_file(path)
