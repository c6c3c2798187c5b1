"""Learning-rate schedules, each with an optional linear warm-up."""

from __future__ import annotations

import math

from seqkit.options import Option
from seqkit.schedule import WARMUP_STEPS, Schedule, warmup_factor


class Constant(Schedule):
    """The base learning rate throughout (after the warm-up)."""

    name = "constant"
    description = "the base --lr throughout"
    options = (WARMUP_STEPS,)

    def __init__(self, warmup_steps: int = 0) -> None:
        self.warmup_steps = warmup_steps

    def lr(self, base_lr: float, step: int, total_steps: int, epoch: int) -> float:
        return base_lr * warmup_factor(step, self.warmup_steps)


class StepDecay(Schedule):
    """The lessons' step decay: ``lr * lr_decay ** ((epoch - 1) // lr_decay_every)``."""

    name = "step"
    description = "multiply --lr by --lr-decay every --lr-decay-every epochs (the lessons' halving)"
    options = (
        Option("lr_decay", float, 1.0, "Multiply the learning rate by this ...", gt=0),
        Option("lr_decay_every", int, 100, "... every N epochs (0 = never).", ge=0),
        WARMUP_STEPS,
    )

    def __init__(self, lr_decay: float = 1.0, lr_decay_every: int = 100, warmup_steps: int = 0) -> None:
        self.lr_decay, self.lr_decay_every, self.warmup_steps = lr_decay, lr_decay_every, warmup_steps

    def lr(self, base_lr: float, step: int, total_steps: int, epoch: int) -> float:
        decay = self.lr_decay ** ((epoch - 1) // self.lr_decay_every) if self.lr_decay_every else 1.0
        return base_lr * decay * warmup_factor(step, self.warmup_steps)


class Cosine(Schedule):
    """Cosine decay from the base rate to ``lr_min`` over the run's updates, per minibatch."""

    name = "cosine"
    description = "cosine decay per minibatch from --lr to --lr-min over the whole run"
    options = (
        Option("lr_min", float, 0.0, "The floor the cosine decays to.", ge=0),
        WARMUP_STEPS,
    )

    def __init__(self, lr_min: float = 0.0, warmup_steps: int = 0) -> None:
        self.lr_min, self.warmup_steps = lr_min, warmup_steps

    def lr(self, base_lr: float, step: int, total_steps: int, epoch: int) -> float:
        span = max(1, total_steps - self.warmup_steps - 1)
        progress = min(1.0, max(0, step - self.warmup_steps) / span)
        rate = self.lr_min + (base_lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return rate * warmup_factor(step, self.warmup_steps)
