"""Parameter updates: SGD (the lesson's, with optional momentum, Nesterov and weight decay), Adam,
and AdamW. Every rule is written once on the backend op surface (``add``, ``multiply``,
``subtract``, ``divide``, ``sqrt``; Adam's is `seqkit.backend.adam_on_ops`), so it runs on every
backend; the plain SGD and Adam steps go through ``backend.sgd_update`` / ``backend.adam_update``,
which the built-in backends implement with native in-place ops as fast paths (and a backend that
does not override ``adam_update`` gets the op-surface rule)."""

from __future__ import annotations

from seqkit import Backend, Option, Optimizer, OptimizerState
from seqkit.backend import Params
from seqkit.errors import ConfigError

WEIGHT_DECAY = Option("weight_decay", float, 0.0, "L2 weight decay added to the gradient (0 = none).", ge=0)
ADAM_OPTIONS = (
    Option("beta1", float, 0.9, "Adam's first-moment decay.", ge=0, lt=1),
    Option("beta2", float, 0.999, "Adam's second-moment decay.", ge=0, lt=1),
    Option("eps", float, 1e-8, "Adam's denominator epsilon.", gt=0),
)


def with_weight_decay(ops: Backend, params: Params, grads: Params, weight_decay: float) -> Params:
    """g + weight_decay * p for every parameter (coupled L2 decay)."""
    if not weight_decay:
        return grads
    return {name: ops.add(g, ops.multiply(params[name], weight_decay)) for name, g in grads.items()}


class SGD(Optimizer):
    """Stochastic gradient descent: p -= lr * g (the lesson's update); with ``momentum`` μ the
    PyTorch form v = μ v + g, p -= lr * v (Nesterov: p -= lr * (g + μ v)); ``weight_decay`` adds
    λ p to the gradient."""

    name = "sgd"
    description = "p -= lr * g (the lesson's update); --momentum, --nesterov, --weight-decay"
    options = (
        Option("momentum", float, 0.0, "SGD momentum (0 = the lesson's plain SGD).", ge=0, lt=1),
        Option("nesterov", bool, False, "Use Nesterov momentum (needs --momentum > 0)."),
        WEIGHT_DECAY,
    )

    def __init__(self, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        if nesterov and not momentum:
            raise ConfigError("--nesterov needs --momentum > 0 (for example --momentum 0.9)")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.slots = ("velocity",) if momentum else ()

    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        state.step += 1
        grads = with_weight_decay(backend, params, grads, self.weight_decay)
        if not self.momentum:
            backend.sgd_update(params, grads, lr)
            return
        velocity = state.slots["velocity"]
        for name, grad in grads.items():
            velocity[name] = backend.add(backend.multiply(velocity[name], self.momentum), grad)
            step = backend.add(grad, backend.multiply(velocity[name], self.momentum)) if self.nesterov \
                else velocity[name]
            params[name] = backend.subtract(params[name], backend.multiply(step, lr))


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``--lr`` around 1e-3 to 1e-2, not the lesson's 1.
    ``weight_decay`` adds λ p to the gradient (the classic, coupled L2; see ``adamw``)."""

    name = "adam"
    description = "Adam with bias correction (--beta1, --beta2, --eps, --weight-decay)"
    slots = ("m", "v")
    options = (*ADAM_OPTIONS, WEIGHT_DECAY)

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = weight_decay

    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        state.step += 1
        grads = with_weight_decay(backend, params, grads, self.weight_decay)
        backend.adam_update(params, grads, state.slots["m"], state.slots["v"], lr, self.beta1, self.beta2,
                            self.eps, state.step)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * λ p, then the Adam step."""

    name = "adamw"
    description = "Adam with decoupled weight decay (--weight-decay, default 0.01)"
    options = (*ADAM_OPTIONS, Option("weight_decay", float, 0.01, "Decoupled weight decay λ (p -= lr λ p).",
                                     ge=0))

    def update(self, backend: Backend, params: Params, grads: Params, lr: float, state: OptimizerState) -> None:
        if self.weight_decay:
            for name in grads:
                params[name] = backend.subtract(params[name], backend.multiply(params[name], lr * self.weight_decay))
        state.step += 1
        backend.adam_update(params, grads, state.slots["m"], state.slots["v"], lr, self.beta1, self.beta2,
                            self.eps, state.step)
