"""The one place MXNet 1.9.1 is imported, with the shims it needs on current NumPy.

MXNet 1.9.1 (the last release) reads ``numpy.bool`` at import time, an alias NumPy removed in
1.24, and breaks outright on NumPy 2 (``numpy.PZERO`` and friends are gone). On NumPy 1.24–1.26
restoring the alias is enough; on NumPy 2 we refuse with a message that says what to install.
Any other import failure (a missing shared library, say) becomes a one-line `UnavailableError`.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from types import ModuleType

import numpy

from seqkit.errors import UnavailableError

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


@lru_cache(maxsize=1)
def import_mxnet() -> ModuleType:
    """The ``mxnet`` module, imported once with the shims applied; `UnavailableError` if it cannot be."""
    check_numpy()
    restore_numpy_aliases()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its numpy-fallback aliases
            import mxnet
    except Exception as exc:  # ImportError, OSError from a missing libgomp/libquadmath, ...
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise UnavailableError(
            f"mxnet cannot be imported here ({type(exc).__name__}: {first_line}); MXNet 1.9.1 has wheels "
            "for a few platforms only (https://pypi.org/project/mxnet/1.9.1/#files): use another "
            "--backend or reinstall with pip install 'seqkit[mxnet]'") from None
    return mxnet
