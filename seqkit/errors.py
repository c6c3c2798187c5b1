"""Errors seqkit raises for bad input. Each carries a one-line message that says what to do."""

from __future__ import annotations

from typing import Any


class SeqkitError(Exception):
    """Base class: the CLI prints the message on one line and exits with status 1."""


class ConfigError(SeqkitError):
    """An option or hyper-parameter value is invalid."""


class DataError(SeqkitError):
    """A corpus or text file is missing, empty, corrupt or cannot be decoded."""


class PluginError(SeqkitError):
    """A component name is unknown or ambiguous, or a plugin is broken."""


class UnavailableError(PluginError):
    """A component exists but cannot be used here (for example its framework is not installed)."""


class DivergedError(SeqkitError):
    """Training produced a non-finite loss."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal or Ctrl-C. ``signum`` is the signal (the CLI exits with
    128 + signum), ``checkpoint`` the folder the state was saved in (or None) and ``run`` the
    `seqkit.api.Run` so far."""

    def __init__(self, signum: int = 2, message: str = "", checkpoint: Any = None, run: Any = None) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.checkpoint = checkpoint
        self.run = run
