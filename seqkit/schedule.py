"""The `Schedule` interface: the learning rate of every update, from the base rate and the position."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from seqkit.options import Option

WARMUP_STEPS = Option("warmup_steps", int, 0, "Raise the learning rate linearly over the first N updates.", ge=0)


class Schedule(ABC):
    """Gives the learning rate of each update (minibatch), so it can change within an epoch.

    ``lr(base_lr, step, total_steps, epoch)``: ``step`` counts the updates before this one over
    the whole run (it is checkpointed, so a resumed run continues the schedule exactly),
    ``total_steps`` is the run's planned number of updates, ``epoch`` counts from 1. Must be a pure
    function of its arguments. Options arrive in the constructor like any component's."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def lr(self, base_lr: float, step: int, total_steps: int, epoch: int) -> float:
        """The learning rate of update ``step`` (0-based) of ``total_steps``, in ``epoch``."""


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: (step + 1) / warmup_steps for the first ``warmup_steps`` updates, then 1."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
