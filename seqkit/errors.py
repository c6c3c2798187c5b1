"""Errors seqkit raises for bad input. Each carries a one-line message that says what to do."""

from __future__ import annotations


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
