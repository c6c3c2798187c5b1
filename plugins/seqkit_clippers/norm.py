"""Gradient clipping by the global L2 norm over all parameters (the lesson's `grad_clipping`)."""

from __future__ import annotations

from seqkit import Backend, Clipper, Option


class NormClipper(Clipper):
    """Rescale all gradients by theta / ||g|| when their global norm ||g|| exceeds theta."""

    name = "norm"
    description = "global L2 norm clipping to --clip-theta"
    options = (Option("clip_theta", float, 1.0, "Largest global gradient norm kept.", gt=0,
                      hint="use --clipper none to disable clipping"),)

    def __init__(self, clip_theta: float = 1.0) -> None:
        self.theta = float(clip_theta)

    def clip(self, backend: Backend, grads):
        return backend.clip_by_global_norm(grads, self.theta)


class NoClipper(Clipper):
    """Leave gradients unchanged (the norm is still measured for the metrics)."""

    name = "none"
    description = "no clipping"

    def clip(self, backend: Backend, grads):
        return backend.clip_by_global_norm(grads, None)
