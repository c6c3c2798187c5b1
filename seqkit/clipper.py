"""The `Clipper` interface: transforms gradients before the parameter update."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from seqkit.backend import Backend, Params
from seqkit.options import Option


class Clipper(ABC):
    """Transforms gradients before the update and reports the pre-clip global norm.

    Constructor keyword arguments are filled from the run options of the same name (for
    example ``theta`` from ``--clip-theta``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def clip(self, backend: Backend, grads: Params) -> tuple[Params, float, bool]:
        """Return ``(gradients, pre-clip global L2 norm, whether they were changed)``.

        The norm and the flag may be numbers or 0-d arrays of ``backend`` (as
        `Backend.clip_by_global_norm` returns them on a device: the loop reads them only when it
        needs the numbers)."""
