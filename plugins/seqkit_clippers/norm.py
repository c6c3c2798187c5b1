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
        norm = backend.global_norm(grads)
        if norm > self.theta:
            return backend.scale(grads, self.theta / norm), norm, True
        return grads, norm, False


class NoClipper(Clipper):
    """Leave gradients unchanged (the norm is still measured for the metrics)."""

    name = "none"
    description = "no clipping"

    def clip(self, backend: Backend, grads):
        return grads, backend.global_norm(grads), False
