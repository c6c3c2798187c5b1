"""Dropout masks: drawn once per minibatch on the host, so every backend drops the same units.

Dropout (``--dropout P``) is inverted: a kept unit is scaled by ``1 / (1 - P)`` during training
and nothing changes at evaluation or generation. It sits on the two non-recurrent connections, as
in Zaremba et al. (2014), "Recurrent neural network regularization":

- the cell output, where it enters the output layer (``H_t`` → ``W_hq``), and
- the input embedding, when there is one (``--embedding`` > 0).

The recurrent path ``H_{t-1}`` → ``H_t`` is never dropped: the state keeps what the sequence has
said so far. One-hot inputs are not dropped either: dropping a one-hot vector erases its token.

Masks come from a NumPy generator seeded by ``(seed, update number)``. That makes them a pure
function of the run's seed and the checkpointed update count, so a resumed run draws the masks
the uninterrupted one would have, and every backend (and every data-parallel rank, which takes
its rows) sees the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DROPOUT_STREAM = 0x5EED_D80  # separates the dropout generator from the run's other seeded streams


@dataclass(frozen=True)
class DropoutMasks:
    """One minibatch's masks, time-major like the fused networks' buffers.

    ``outputs`` is (T, B, H) and ``inputs`` (T, B, E) or None (one-hot inputs): boolean arrays,
    True where the unit is kept. `scaled` gives them as 0 / ``1 / (1 - rate)`` multipliers."""

    rate: float
    outputs: np.ndarray
    inputs: np.ndarray | None = None

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.rate)

    def scaled(self, which: str, dtype: np.dtype | str) -> np.ndarray:
        """The ``"outputs"`` or ``"inputs"`` mask as multipliers of ``dtype``: 0 or 1 / (1 - rate)."""
        keep = getattr(self, which)
        dtype = np.dtype(dtype)
        return keep.astype(dtype) * dtype.type(self.scale)

    def rows(self, rows: slice | np.ndarray) -> "DropoutMasks":
        """The masks of the sequences ``rows`` (a data-parallel rank's share of the batch)."""
        return DropoutMasks(self.rate, self.outputs[:, rows],
                            None if self.inputs is None else self.inputs[:, rows])


def draw_masks(rate: float, seed: int, update: int, batch_size: int, num_steps: int, hidden: int,
               embedding: int) -> DropoutMasks | None:
    """The masks of update number ``update`` (0-based over the run), or None when ``rate`` is 0."""
    if rate <= 0:
        return None
    rng = np.random.default_rng([DROPOUT_STREAM, seed, update])
    outputs = rng.random((num_steps, batch_size, hidden), dtype=np.float32) >= rate
    inputs = rng.random((num_steps, batch_size, embedding), dtype=np.float32) >= rate if embedding else None
    return DropoutMasks(rate, outputs, inputs)
