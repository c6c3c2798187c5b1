"""seqkit: recurrent sequence models on any array framework, extended through plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqkit.backend import Backend
from seqkit.cell import Cell, ParamSpec
from seqkit.clipper import Clipper
from seqkit.corpus import Corpus
from seqkit.decoder import Decoder
from seqkit.errors import SeqkitError
from seqkit.hookspecs import hookimpl
from seqkit.logger import Logger
from seqkit.optimizer import Optimizer, OptimizerState
from seqkit.options import Option
from seqkit.plugins import LazyComponent
from seqkit.sampler import Sampler
from seqkit.schedule import Schedule

__version__ = "0.1.0"

__all__ = [
    "Backend", "Cell", "Clipper", "Corpus", "Decoder", "LazyComponent", "Logger", "Option", "Optimizer",
    "OptimizerState", "ParamSpec", "Sampler", "Schedule", "SeqkitError", "hookimpl", "load", "train", "__version__",
]

if TYPE_CHECKING:
    from seqkit.api import Run


def train(**options: Any) -> "Run":
    """Train a model; options are the CLI's with underscores, component options included
    (``seqkit.train(decoder="temperature", temperature=0.8)``), plus ``preset=NAME`` and
    ``config=FILE.toml``. See `seqkit.api.train`."""
    from seqkit.api import train as _train

    return _train(**options)


def load(path: Any, backend: str = "numpy", **options: Any) -> "Run":
    """A trained model from a checkpoint (a run's --out folder or its checkpoint/ folder) on any
    backend (``device=``, ``impl=``, a decoder and its options may be given); it has
    ``.predict(...)``, ``.evaluate(...)`` and ``.save(path)``."""
    from seqkit.api import load as _load

    return _load(path, backend=backend, **options)
