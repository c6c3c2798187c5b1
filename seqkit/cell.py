"""The `Cell` interface: one recurrent step written once against a backend's op surface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from seqkit.options import Option


@dataclass(frozen=True)
class ParamSpec:
    """Shape and initialisation of one named parameter: ``init`` is ``"normal"`` (scale 0.01) or ``"zeros"``."""

    shape: tuple[int, ...]
    init: Literal["normal", "zeros"] = "normal"


class Cell(ABC):
    """One recurrent step, written only with the backend op surface (`seqkit.backend.Backend`).

    ``input_size`` is the width of the step input (vocabulary size for one-hot inputs, the
    embedding width otherwise); ``hidden_size`` is the width of the output fed to the output layer.
    The state is always a tuple of arrays (one for an RNN, two for an LSTM) so every backend can
    detach, carry and checkpoint it without knowing the cell.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def param_specs(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        """The cell's parameters by name (names must not clash with W_hq, b_q, W_embed)."""

    def state_shapes(self, batch_size: int, hidden_size: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of the state tuple; the default is a single (batch, hidden) array."""
        return ((batch_size, hidden_size),)

    @abstractmethod
    def step(self, ops: Any, params: dict[str, Any], x: Any, state: tuple) -> tuple[Any, tuple]:
        """Advance one time step: ``x`` is (batch, input_size); returns ``(output, new_state)``
        where ``output`` is (batch, hidden_size)."""
