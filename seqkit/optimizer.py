"""The `Optimizer` interface: turns (clipped) gradients into a parameter update."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from seqkit.backend import Backend, Params
from seqkit.options import Option


@dataclass
class OptimizerState:
    """Per-parameter slot arrays (native, by slot name then parameter name) and the number of
    updates done. Checkpoints store the slots as arrays ``opt.<slot>.<param>``."""

    slots: dict[str, Params] = field(default_factory=dict)
    step: int = 0


class Optimizer(ABC):
    """Updates parameters in place from their gradients and the learning rate of the epoch.

    ``slots`` names the per-parameter arrays the optimizer keeps (zeros at the start, the
    parameters' shapes). Constructor keyword arguments are filled from the run options of the
    same name (``beta1``, ``beta2``, ``eps``)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    slots: ClassVar[tuple[str, ...]] = ()

    def init_state(self, backend: Backend, params: Params) -> OptimizerState:
        """Zero slots shaped like the parameters."""
        return OptimizerState({slot: {name: backend.zeros(tuple(p.shape))
                                      for name, p in params.items()} for slot in self.slots})

    @abstractmethod
    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        """Apply one update in place and advance ``state.step``."""
