"""Running sums of an epoch's training metrics that may stay on the device until they are read.

On a GPU, reading a loss as a Python number waits for the device to finish the minibatch, so the
next one cannot be queued meanwhile. The fit loop therefore keeps the loss, gradient-norm and
clipping sums as whatever the network and the clipper returned (numbers, or 0-d arrays on the
backend's device), adds to them with the backend's `accumulate` (device arithmetic, no wait), and
reads them on the host only when someone asks: the divergence check every
``backend.host_check_interval`` minibatches, the progress display, a checkpoint, the epoch's row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqkit.backend import Backend


class RunningSums:
    """Immutable sums over the minibatches trained so far: loss × predicted tokens, pre-clip
    gradient norms, and clipped updates. Each may be a Python number or a 0-d device array;
    `loss`, `norm` and `clipped` read them as numbers (waiting for the device once, then cached)."""

    __slots__ = ("_values", "_host")

    def __init__(self, loss: Any = 0.0, norm: Any = 0.0, clipped: Any = 0) -> None:
        self._values = (loss, norm, clipped)
        self._host: tuple[float, float, int] | None = None

    def add(self, backend: "Backend", loss: Any, tokens: int, norm: Any, clipped: Any) -> "RunningSums":
        """These sums with one more minibatch: mean ``loss`` over ``tokens`` predictions, its
        gradient ``norm`` and whether it was ``clipped`` (numbers or the backend's 0-d arrays)."""
        old_loss, old_norm, old_clipped = self._values
        return RunningSums(backend.accumulate(old_loss, loss, tokens), backend.accumulate(old_norm, norm),
                           backend.accumulate(old_clipped, clipped))

    def read(self) -> tuple[float, float, int]:
        """(loss sum, norm sum, clipped count) as host numbers."""
        if self._host is None:
            loss, norm, clipped = self._values
            self._host = (float(loss), float(norm), int(round(float(clipped))))
        return self._host

    @property
    def loss(self) -> float:
        return self.read()[0]

    @property
    def norm(self) -> float:
        return self.read()[1]

    @property
    def clipped(self) -> int:
        return self.read()[2]

    def __repr__(self) -> str:
        loss, norm, clipped = self.read()
        return f"RunningSums(loss={loss!r}, norm={norm!r}, clipped={clipped!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunningSums) and self.read() == other.read()
