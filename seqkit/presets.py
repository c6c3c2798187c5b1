"""Presets: named configurations (the lessons seqkit grows from), shipped by plugins as TOML.

A preset file has a ``[preset]`` table describing it and an ``[options]`` table of option values::

    [preset]
    description = "The current d2l lesson: ..."
    source = "https://d2l.ai/chapter_recurrent-neural-networks/rnn-scratch.html"
    expected = "perplexity about 1.0 after 500 epochs (sequential)"

    [options]
    corpus = "timemachine"
    max_tokens = 10000

`seqkit run --preset NAME` starts from its options; config files and flags override them. Values
for components the run does not select are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqkit.configfile import parse_toml
from seqkit.errors import ConfigError

PRESET_KEYS = ("description", "source", "expected")


@dataclass(frozen=True)
class Preset:
    """A named configuration: option ``values``, what it reproduces (``source``), what the run
    should give (``expected``), and the plugin that shipped it."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""
    expected: str = ""
    plugin: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "plugin": self.plugin, "description": self.description, "source": self.source,
                "expected": self.expected, "options": dict(self.values)}


def preset_from_toml(name: str, text: str, origin: str) -> Preset:
    """Parse a preset file (``[preset]`` metadata and ``[options]``), or raise `ConfigError`."""
    data = parse_toml(text, origin)
    meta, values = data.get("preset", {}), data.get("options", {})
    extra = sorted(set(data) - {"preset", "options"})
    if extra or not isinstance(meta, dict) or not isinstance(values, dict):
        raise ConfigError(f"{origin} must hold a [preset] table and an [options] table (found: {', '.join(data)})")
    unknown = sorted(set(meta) - set(PRESET_KEYS))
    if unknown:
        raise ConfigError(f"{origin}: unknown [preset] key {unknown[0]!r}; valid keys: {', '.join(PRESET_KEYS)}")
    return Preset(name, dict(values), **{k: str(meta.get(k, "")) for k in PRESET_KEYS})


def presets_in_folder(folder: str | Path) -> list[Preset]:
    """Every ``*.toml`` preset in ``folder``, named after the file."""
    return [preset_from_toml(path.stem, path.read_text(encoding="utf-8"), str(path))
            for path in sorted(Path(folder).glob("*.toml"))]
