"""A language-model network: input encoding, a `Cell` unrolled over time, and an output layer.

`ModelSpec` names the parameters and initialises them from a seeded NumPy generator, so one seed
gives one starting point on every backend. `Network` is what the engine trains; `GenericNetwork`
runs any cell through the backend's autodiff ("scratch"); a backend may supply a faster fused
`Network` for cells it knows ("fused"). Both must give the same numbers from the same parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from seqkit.backend import Backend, Params
from seqkit.cell import Cell, ParamSpec
from seqkit.dropout import DropoutMasks

OUTPUT_PARAMS = ("W_hq", "b_q")
EMBED_PARAM = "W_embed"
INIT_SCALE = 0.01
#: How fresh parameters are drawn (``--init``): the lessons' small normal, or PyTorch's defaults.
INIT_SCHEMES = ("small-normal", "pytorch")


@dataclass(frozen=True)
class ModelSpec:
    """What a network is: the cell, vocabulary size, hidden width and input encoding.

    ``embedding_dim == 0`` means one-hot inputs (the lesson's default). ``init`` is one of
    `INIT_SCHEMES` (see `init_params`)."""

    cell: Cell
    vocab_size: int
    hidden_size: int
    embedding_dim: int = 0
    init: str = "small-normal"

    @property
    def input_size(self) -> int:
        return self.embedding_dim or self.vocab_size

    def param_specs(self) -> dict[str, ParamSpec]:
        specs = dict(self.cell.param_specs(self.input_size, self.hidden_size))
        reserved = set(OUTPUT_PARAMS) | {EMBED_PARAM}
        clash = reserved & specs.keys()
        if clash:
            raise ValueError(f"cell {self.cell.name!r} uses reserved parameter names {sorted(clash)}")
        specs["W_hq"] = ParamSpec((self.hidden_size, self.vocab_size), "normal")
        specs["b_q"] = ParamSpec((self.vocab_size,), "zeros")
        if self.embedding_dim:
            specs[EMBED_PARAM] = ParamSpec((self.vocab_size, self.embedding_dim), "normal")
        return specs

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fresh float64 parameters, drawn in name order from ``rng``.

        ``small-normal`` (the lessons'): normal(0, 0.01) weights and zero biases (a `ParamSpec`
        with ``init="zeros"``). ``pytorch``: what ``nn.RNN``/``nn.GRU``, ``nn.Linear`` and
        ``nn.Embedding`` start from — every weight and bias of the cell and the output layer
        uniform in ±1/√hidden, the embedding normal(0, 1). The small init starts with a nearly
        memoryless recurrence and slow learning; on tiny Shakespeare the PyTorch one reaches in
        one epoch what the small one needs five for (docs/results.md)."""
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"unknown init scheme {self.init!r}; choose one of: {', '.join(INIT_SCHEMES)}")
        params = {}
        bound = 1.0 / np.sqrt(self.hidden_size)
        for name, spec in sorted(self.param_specs().items()):
            if self.init == "pytorch":
                if name == EMBED_PARAM:
                    params[name] = rng.normal(0.0, 1.0, size=spec.shape)
                else:
                    params[name] = rng.uniform(-bound, bound, size=spec.shape)
            elif spec.init == "zeros":
                params[name] = np.zeros(spec.shape)
            else:
                params[name] = rng.normal(0.0, INIT_SCALE, size=spec.shape)
        return params


class Network(ABC):
    """A `ModelSpec` bound to a backend: training loss and gradients, evaluation, stepping.

    Token ids arrive as NumPy int arrays of shape (batch, steps); states are tuples of native
    arrays. The loss is the mean cross-entropy over every predicted token.
    """

    impl: str = ""
    #: Whether `loss_and_grad` applies ``masks`` (see `seqkit.dropout`); a network that does not
    #: is refused for runs with ``--dropout``.
    supports_dropout: bool = False

    def __init__(self, backend: Backend, spec: ModelSpec) -> None:
        self.backend = backend
        self.spec = spec

    def init_state(self, batch_size: int) -> tuple:
        """A zero state for ``batch_size`` sequences."""
        shapes = self.spec.cell.state_shapes(batch_size, self.spec.hidden_size)
        return tuple(self.backend.zeros(shape) for shape in shapes)

    @abstractmethod
    def loss_and_grad(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0,
        masks: DropoutMasks | None = None,
    ) -> tuple[float, Params, tuple]:
        """Mean loss over steps ``loss_from:`` of the minibatch, its gradients, and the final state
        (detached). Steps before ``loss_from`` only carry the state forward (used by --no-detach).
        ``masks`` (only passed when `supports_dropout`) drop the cell outputs before the output
        layer and the embedded inputs, as `seqkit.dropout` describes."""

    @abstractmethod
    def loss(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[float, tuple]:
        """Mean loss of a minibatch without gradients, and the final state."""

    def loss_and_grad_deferred(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0, **extra: Any,
    ) -> tuple[Any, Params, tuple]:
        """`loss_and_grad` with the loss left where it was computed: a float, or a 0-d array on
        the backend's device that ``float()`` reads. The fit loop calls this one so that on a GPU
        it does not wait for every minibatch (`seqkit.running`); the default is `loss_and_grad`."""
        return self.loss_and_grad(params, X, Y, state, loss_from, **extra)

    def loss_deferred(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[Any, tuple]:
        """`loss` with the loss left where it was computed (see `loss_and_grad_deferred`)."""
        return self.loss(params, X, Y, state)

    @abstractmethod
    def step(self, params: Params, ids: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """Feed one token per sequence (``ids`` of shape (batch,)); return NumPy logits (batch, V)
        and the new state."""

    @contextmanager
    def decoding(self, params: Params, state: tuple) -> Iterator[Callable[[int], np.ndarray]]:
        """Context for generation: yields a function feeding one token of a single sequence and
        returning its NumPy logits (V,), keeping the state inside. ``params`` must not change
        inside the context. The default calls `step`; fused networks precompute what they can."""
        current = [state]

        def feed(token: int) -> np.ndarray:
            logits, current[0] = self.step(params, np.array([token], dtype=np.int64), current[0])
            return logits[0]

        yield feed


class GenericNetwork(Network):
    """Runs any cell through the backend's op surface and autodiff (``--impl scratch``)."""

    impl = "scratch"
    supports_dropout = True

    def _inputs(self, params: Params, ids: Any) -> Any:
        ops = self.backend
        if self.spec.embedding_dim:
            return ops.take(params[EMBED_PARAM], ids)
        return ops.one_hot(ids, self.spec.vocab_size)

    def _unroll(self, params: Params, X: np.ndarray, state: tuple, keep_from: int,
                masks: DropoutMasks | None = None) -> tuple[list, tuple]:
        """The cell's outputs from step ``keep_from`` on (dropped by ``masks``) and the final state."""
        ops = self.backend
        steps = ops.asarray(np.ascontiguousarray(X.T))
        drop_in = drop_out = None
        if masks is not None:
            drop_out = masks.scaled("outputs", ops.dtype)
            if masks.inputs is not None and self.spec.embedding_dim:
                drop_in = masks.scaled("inputs", ops.dtype)
        outputs = []
        for t in range(X.shape[1]):
            x = self._inputs(params, steps[t])
            if drop_in is not None:
                x = ops.multiply(x, ops.asarray(drop_in[t]))
            out, state = self.spec.cell.step(ops, params, x, state)
            if t >= keep_from:
                outputs.append(out if drop_out is None else ops.multiply(out, ops.asarray(drop_out[t])))
        return outputs, state

    def _logits(self, params: Params, outputs: list) -> Any:
        ops = self.backend
        hidden = ops.concatenate(outputs, axis=0)
        return ops.add(ops.matmul(hidden, params["W_hq"]), params["b_q"])

    def _loss_fn(self, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int,
                 masks: DropoutMasks | None = None):
        ops = self.backend
        targets = ops.asarray(np.ascontiguousarray(Y[:, loss_from:].T).reshape(-1))

        def fn(params: Params):
            outputs, final = self._unroll(params, X, state, loss_from, masks)
            return ops.cross_entropy(self._logits(params, outputs), targets), final

        return fn

    def loss_and_grad(self, params, X, Y, state, loss_from=0, masks=None):
        loss, grads, final = self.backend.value_and_grad(self._loss_fn(X, Y, state, loss_from, masks), params)
        return loss, grads, final

    def loss(self, params, X, Y, state):
        ops = self.backend
        loss, final = self._loss_fn(X, Y, state, 0)(params)
        return float(ops.to_numpy(loss).item()), tuple(ops.detach(s) for s in final)

    def step(self, params, ids, state):
        ops = self.backend
        x = self._inputs(params, ops.asarray(np.asarray(ids)))
        out, state = self.spec.cell.step(ops, params, x, state)
        logits = self._logits(params, [out])
        return ops.to_numpy(logits), tuple(ops.detach(s) for s in state)
