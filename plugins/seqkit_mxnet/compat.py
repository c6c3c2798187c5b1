"""The one place MXNet 1.9.1 is imported, with the shims it needs on current NumPy.

MXNet 1.9.1 (the last release) reads ``numpy.bool`` at import time, an alias NumPy removed in
1.24, and breaks outright on NumPy 2 (``numpy.PZERO`` and friends are gone). On NumPy 1.24–1.26
restoring the alias is enough; on NumPy 2 we refuse with a message that says what to install.
Any other import failure (a missing shared library, say) becomes a one-line `UnavailableError`.

MXNet runs every operator on its own engine; by default a threaded one, whose worker thread and
OpenMP team compete with the Python thread for the cores. seqkit waits for every minibatch's loss
anyway, so it asks for the synchronous ``NaiveEngine`` unless ``MXNET_ENGINE_TYPE`` is already
set: on a 2-core machine the fused network trains about 1.4-2x faster with it at 2 threads
(docs/performance.md). Set ``MXNET_ENGINE_TYPE=ThreadedEnginePerDevice`` to keep MXNet's default.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from functools import lru_cache
from types import ModuleType
from typing import Iterator

import numpy

from seqkit.errors import UnavailableError

#: The engine seqkit asks for when the user has not chosen one (read once, when MXNet is imported).
DEFAULT_ENGINE = "NaiveEngine"

NUMPY_2_MESSAGE = "MXNet 1.9.1 needs numpy < 2: pip install 'numpy<2'"

# Aliases removed from NumPy that MXNet 1.9.1 touches when it is imported.
REMOVED_ALIASES = {"bool": bool}


def check_numpy(version: str | None = None) -> None:
    """Raise `UnavailableError` when ``version`` (default: the installed NumPy) is 2 or later."""
    version = numpy.__version__ if version is None else version
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return
    if major >= 2:
        raise UnavailableError(f"{NUMPY_2_MESSAGE} (found numpy {version})")


def restore_numpy_aliases() -> None:
    """Put back ``numpy.bool = bool`` (and any other alias MXNet needs) where NumPy lacks it."""
    for name, value in REMOVED_ALIASES.items():
        if name not in numpy.__dict__:
            setattr(numpy, name, value)


@contextmanager
def _without_engine_notice() -> Iterator[None]:
    """Drop MXNet's "start using engine" line from what the process writes to its stderr (file
    descriptor 2, where MXNet's C++ logging goes) inside the block; anything else passes on."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to borrow
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if "start using engine" not in line]
            if kept:
                sys.stderr.write("".join(kept))


@lru_cache(maxsize=1)
def import_mxnet() -> ModuleType:
    """The ``mxnet`` module, imported once with the shims applied; `UnavailableError` if it cannot be."""
    check_numpy()
    restore_numpy_aliases()
    choose_engine = "mxnet" not in sys.modules and "MXNET_ENGINE_TYPE" not in os.environ
    if choose_engine:
        os.environ["MXNET_ENGINE_TYPE"] = DEFAULT_ENGINE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its numpy-fallback aliases
            import mxnet
        if choose_engine:
            with _without_engine_notice():
                mxnet.nd.zeros((1,)).wait_to_read()  # the engine starts here, and says so on stderr
    except Exception as exc:  # ImportError, OSError from a missing libgomp/libquadmath, ...
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise UnavailableError(
            f"mxnet cannot be imported here ({type(exc).__name__}: {first_line}); MXNet 1.9.1 has wheels "
            "for a few platforms only (https://pypi.org/project/mxnet/1.9.1/#files): use another "
            "--backend or reinstall with pip install 'seqkit[mxnet]'") from None
    return mxnet
