"""Declared options: what a component (or the engine) accepts, with type, default, help and checks.

An `Option` is the single place an option is described and validated. The command line, the
Python API, config files, presets, summaries and checkpoints all work from these declarations::

    class TopK(Decoder):
        name = "top-k"
        options = (Option("top_k", int, 10, "Sample among the K most likely tokens.", ge=1),)

        def __init__(self, top_k: int = 10) -> None: ...

``--top-k 5`` on the command line, ``top_k=5`` in `seqkit.train` or a config file, and the value
stored in a checkpoint all reach the constructor as ``top_k=5``, validated here first.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable

from seqkit.errors import ConfigError

TYPES = (str, int, float, bool)
MAX_STRING = 10_000  # a bound on any string option (prefixes, paths, names)


@dataclass(frozen=True)
class Option:
    """One declared option.

    ``name`` is the Python name (``clip_theta``); the flag is ``--clip-theta``. ``type`` is one of
    ``str``, ``int``, ``float``, ``bool``. ``default`` may be None only with ``nullable=True``
    (None means "not set": the component or corpus decides). ``gt``/``ge``/``lt``/``le`` bound a
    number, ``choices`` restricts a string. ``multiple`` makes it a list of values (the flag
    may be repeated; a single value is accepted too). ``path`` marks a file or folder name,
    stored as an absolute path so a run folder works from anywhere. ``hint`` is added to the
    validation error (say what to do). ``resumable`` says whether ``--resume`` may change it
    (None: the kind decides — options of backends and decoders may change, others may not);
    ``portable=False`` marks a per-machine value (a device) that a checkpoint records but does
    not impose on the machine that loads it. ``nonempty`` rejects an empty string."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    nullable: bool = False
    multiple: bool = False
    path: bool = False
    hint: str = ""
    resumable: bool | None = None
    portable: bool = True
    nonempty: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.startswith("_"):
            raise ValueError(f"option name {self.name!r} must be a Python identifier (like clip_theta)")
        if self.type not in TYPES:
            raise ValueError(f"option {self.name!r}: type must be one of str, int, float, bool")
        if self.default is None and not self.nullable and not self.multiple:
            raise ValueError(f"option {self.name!r} has no default: give one or declare nullable=True")

    @property
    def flag(self) -> str:
        """The command-line spelling: ``--clip-theta``."""
        return "--" + self.name.replace("_", "-")

    @property
    def type_name(self) -> str:
        base = {str: "text", int: "integer", float: "number", bool: "boolean"}[self.type]
        return f"list of {base}" if self.multiple else base

    def constraint(self) -> str:
        """What a valid value looks like, in words (for help and errors)."""
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        for word, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)):
            if bound is not None:
                parts.append(f"{word} {bound:,}" if float(bound).is_integer() and abs(bound) >= 1e4 else
                             f"{word} {bound:g}")
        return " and ".join(parts)

    def default_text(self) -> str:
        """The default as a user would type it."""
        return show_value(self.default)

    def validate(self, value: Any) -> Any:
        """The value, coerced to the declared type and checked, or a one-line `ConfigError`."""
        if value is None:
            if self.nullable or (self.multiple and self.default is None):
                return None
            raise self._error(value, "set")
        if self.multiple:
            items = [value] if isinstance(value, (str, int, float, bool)) else value
            if not isinstance(items, (list, tuple)):
                raise self._error(value, f"a {self.type_name}")
            if not items:
                return None if self.nullable else self._raise_empty()
            return [self._one(v) for v in items]
        return self._one(value)

    def _raise_empty(self) -> None:
        raise ConfigError(f"{self.flag} needs at least one value")

    def _one(self, value: Any) -> Any:
        value = self._coerce(value)
        if self.type is str and self.nonempty and not value:
            raise ConfigError(f"{self.flag} must not be empty" + (f" ({self.hint})" if self.hint else ""))
        if self.type is str and len(value) > MAX_STRING:
            raise ConfigError(f"{self.flag} is {len(value):,} characters long; the limit is {MAX_STRING:,}")
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {self.flag} {value!r}{hint}; choose one of: {', '.join(self.choices)}")
        if self.type in (int, float):
            ok = not (isinstance(value, float) and math.isnan(value))
            ok = ok and (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
            ok = ok and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le)
            if not ok:
                raise self._error(value, self.constraint() or "a number")
        if self.path:
            value = os.path.abspath(os.path.expanduser(value))
        return value

    def _coerce(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool):
                return value
            raise self._error(value, "true or false")
        if self.type is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise self._error(value, "an integer" + (f" {self.constraint()}" if self.constraint() else ""))
        if self.type is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    return float(value)
                except OverflowError:
                    raise self._error(value, "a number a float can hold") from None
            raise self._error(value, "a number" + (f" {self.constraint()}" if self.constraint() else ""))
        if isinstance(value, str):
            return value
        if hasattr(value, "__fspath__") and self.path:
            return os.fspath(value)
        raise self._error(value, "a string")

    def _error(self, value: Any, what: str) -> ConfigError:
        hint = f" ({self.hint})" if self.hint else ""
        return ConfigError(f"{self.flag} must be {what}, got {value!r}{hint}")


def show_value(value: Any) -> str:
    """A value as a user would type it on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(not set)"
    if isinstance(value, (list, tuple)):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def nearest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or an empty string."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_options(owner: str, options: Any) -> tuple[Option, ...]:
    """``options`` as a tuple of `Option` with distinct names, or a `ValueError` naming ``owner``."""
    options = tuple(options or ())
    seen: set[str] = set()
    for opt in options:
        if not isinstance(opt, Option):
            raise ValueError(f"{owner} declares {opt!r} in its options, which is not a seqkit.Option")
        if opt.name in seen:
            raise ValueError(f"{owner} declares option {opt.name!r} twice")
        seen.add(opt.name)
    return options
