"""Parameter updates: p -= lr * g (the lesson), and bias-corrected Adam."""

from __future__ import annotations

from seqkit import Backend, Option, Optimizer, OptimizerState
from seqkit.backend import Params


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
    options = (
        Option("beta1", float, 0.9, "Adam's first-moment decay.", ge=0, lt=1),
        Option("beta2", float, 0.999, "Adam's second-moment decay.", ge=0, lt=1),
        Option("eps", float, 1e-8, "Adam's denominator epsilon.", gt=0),
    )

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        state.step += 1
        backend.adam_update(params, grads, state.slots["m"], state.slots["v"], lr, self.beta1, self.beta2,
                            self.eps, state.step)
