"""Built-in presets: the five lessons seqkit grows from and a tiny-Shakespeare recipe, as TOML files beside this module."""

from pathlib import Path

from seqkit import hookimpl
from seqkit.hookspecs import Register
from seqkit.presets import presets_in_folder


@hookimpl
def register_presets(register: Register) -> None:
    """Provide the lessons (``d2l-2019``, ``d2l``, ``d2l-concise``, ``straight-dope``, ``jaychou``) and
    ``shakespeare-rnn``, our best held-out recipe for tiny Shakespeare."""
    for preset in presets_in_folder(Path(__file__).parent):
        register(preset)
