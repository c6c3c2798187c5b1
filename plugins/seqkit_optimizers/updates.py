"""Parameter updates: p -= lr * g (the lesson), and bias-corrected Adam."""

from __future__ import annotations

from seqkit import Backend, Optimizer, OptimizerState
from seqkit.backend import Params
from seqkit.errors import ConfigError


class SGD(Optimizer):
    """Plain stochastic gradient descent: p -= lr * g (the lesson's update)."""

    name = "sgd"
    description = "p -= lr * g (the lesson's update)"

    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        state.step += 1
        backend.sgd_update(params, grads, lr)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``--lr`` around 1e-3 to 1e-2, not the lesson's 1."""

    name = "adam"
    description = "Adam with bias correction (--beta1, --beta2, --eps)"
    slots = ("m", "v")

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        for flag, value in (("--beta1", beta1), ("--beta2", beta2)):
            if not 0 <= value < 1:
                raise ConfigError(f"{flag} must be in [0, 1), got {value}")
        if not eps > 0:
            raise ConfigError(f"--eps must be > 0, got {eps}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        state.step += 1
        backend.adam_update(params, grads, state.slots["m"], state.slots["v"], lr, self.beta1, self.beta2,
                            self.eps, state.step)
