"""The `Corpus` interface: where text comes from and how it is normalised before tokenisation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from seqkit.options import Option

NORMALIZE = Option("normalize", str, "default", "Text normalisation: the corpus' own rule, or none (raw text).",
                   choices=("default", "none"))
DATA_DIR = Option("data_dir", str, None, "Folder holding corpus files for offline use (also $SEQKIT_DATA).",
                  nullable=True, path=True, resumable=True, portable=False)


class Corpus(ABC):
    """A named text source.

    ``read()`` returns the text ready for tokenisation. A corpus declares its options in
    ``options`` (`seqkit.Option`, for example ``NORMALIZE`` and ``DATA_DIR`` from this module) and
    receives their values as constructor keywords. Class attributes give the per-corpus defaults:
    ``default_prefix`` for samples, ``default_val_fraction`` for the held-out tail, and
    ``reserve_unk`` (whether the vocabulary gets an ``<unk>`` token at index 0). ``source`` says
    where the text comes from (a URL or "user file"), shown by ``seqkit plugins``. Raise
    `seqkit.errors.DataError` with a message that says what to do when the text cannot be had.
    ``default_options`` holds the option values this corpus recommends (epochs, optimizer, ...):
    they sit under presets, config files and flags, so a run with no other flag is a good one.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    source: ClassVar[str] = ""
    default_prefix: ClassVar[str] = ""
    default_val_fraction: ClassVar[float] = 0.0
    reserve_unk: ClassVar[bool] = False
    default_options: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def read(self) -> str:
        """The corpus text after this corpus' normalisation (raw with ``normalize="none"``)."""
