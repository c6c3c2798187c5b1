"""Config files: a run's options as TOML (read with tomllib, written with tomli-w).

A config file is a flat table of option names (the API's, with underscores) and values::

    corpus = "shakespeare"
    hidden = 256
    optimizer = "adam"
    lr = 0.002

`seqkit run --print-config` writes the fully resolved configuration in this form; feeding it back
with ``--config`` gives the same run. Unknown keys are errors naming the nearest valid key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqkit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from seqkit.config import RunConfig

MAX_CONFIG_BYTES = 1 << 20


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """The table in ``text``, or a `ConfigError` that says where it is malformed."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options in a TOML config file (a flat table), or a one-line `ConfigError`."""
    path = Path(path).expanduser()
    try:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist or is not a file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes: not a seqkit config")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    values = parse_toml(text, f"config file {path}")
    for key, value in values.items():
        if isinstance(value, dict):
            raise ConfigError(f"config file {path}: [{key}] is a table; write options as plain `name = value` lines")
    return values


def config_to_toml(config: "RunConfig", header: str = "") -> str:
    """The resolved configuration as TOML, grouped under comments: the engine's options, then each
    selected component's. Unset options (None) are left out."""
    import tomli_w

    from seqkit.config import CORE_GROUPS

    values = config.to_dict()
    sections: list[tuple[str, list[str]]] = [(group, [o.name for o in opts]) for group, opts in CORE_GROUPS.items()]
    by_component: dict[tuple[str, str], list[str]] = {}
    for name, owners in config.owners.items():
        by_component.setdefault(owners[0], []).append(name)
    sections += [(f"{kind} {comp!r}", names) for (kind, comp), names in by_component.items()]
    parts = [header] if header else []
    for title, names in sections:
        chunk = {n: values[n] for n in names if values.get(n) is not None}
        if chunk:
            parts.append(f"# {title}\n{tomli_w.dumps(chunk)}")
    return "\n".join(parts)
