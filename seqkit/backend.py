"""The `Backend` interface: array math, autodiff, devices and parameter updates for one framework.

A backend is the only place a framework is imported. Cells are written against the op surface
below (like ``keras.ops``), so a cell written once runs on every backend. Parameters live in a
``dict[str, native array]``; the core creates them in NumPy and hands them over with `asarray`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from seqkit.options import Option

if TYPE_CHECKING:
    import numpy as np
    from seqkit.distributed import DataParallel, World
    from seqkit.network import ModelSpec, Network

Array = Any
Params = dict[str, Any]
LossFn = Callable[[Params], "tuple[Array, Any]"]

DEVICE = Option("device", str, "auto", "Device: auto, cpu, cuda, cuda:N (backend-specific).", portable=False)
DTYPE = Option("dtype", str, "float32", "Floating-point precision of parameters and activations.",
               choices=("float32", "float64"), resumable=False)
BACKEND_OPTIONS = (DEVICE, DTYPE)


def map_leaves(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``fn`` applied to every leaf of nested tuples, lists and dicts (the same containers back);
    backends use it to detach the auxiliary output of `Backend.value_and_grad`."""
    if isinstance(tree, tuple):
        return tuple(map_leaves(fn, x) for x in tree)
    if isinstance(tree, list):
        return [map_leaves(fn, x) for x in tree]
    if isinstance(tree, dict):
        return {k: map_leaves(fn, v) for k, v in tree.items()}
    return fn(tree)


class Backend(ABC):
    """Array math, autodiff, devices and SGD updates for one array framework.

    Subclasses set ``name`` and implement every abstract method. ``device`` is the resolved
    device string (``"cpu"``, ``"cuda:0"``, ...); ``dtype`` is ``"float32"`` or ``"float64"``.
    The constructor receives ``device`` (a user string such as ``"auto"``) and ``dtype`` and
    raises `seqkit.errors.ConfigError` for a device it cannot use.

    Op surface (used by cells, the generic network and optimizers): every op takes and returns
    native arrays of this backend and must be differentiable by `value_and_grad`; ``add``,
    ``subtract`` and ``multiply`` also accept a Python number on either side.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = BACKEND_OPTIONS
    #: Minibatches between the fit loop's host reads of the loss (its divergence check). Reading
    #: a device value waits for the device; a GPU backend raises this so training does not stall
    #: after every minibatch. With 1 a diverging minibatch is caught before its update.
    host_check_interval: int = 1

    def __init__(self, device: str = "auto", dtype: str = "float32") -> None:
        self.device = device
        self.dtype = dtype

    # -- conversion -------------------------------------------------------------------------
    @abstractmethod
    def asarray(self, array: np.ndarray) -> Array:
        """Copy a NumPy array onto this backend's device; floats become ``self.dtype``, ints stay ints."""

    @abstractmethod
    def to_numpy(self, x: Array) -> np.ndarray:
        """Return a NumPy copy of a native array (detached from any autodiff graph)."""

    # -- op surface -------------------------------------------------------------------------
    @abstractmethod
    def matmul(self, a: Array, b: Array) -> Array:
        """Matrix product of two 2-D arrays."""

    @abstractmethod
    def add(self, a: Array, b: Array) -> Array:
        """Elementwise sum with broadcasting."""

    @abstractmethod
    def multiply(self, a: Array, b: Array) -> Array:
        """Elementwise product with broadcasting."""

    @abstractmethod
    def subtract(self, a: Array, b: Array) -> Array:
        """Elementwise difference with broadcasting."""

    def divide(self, a: Array, b: Array) -> Array:
        """Elementwise quotient with broadcasting (either side may be a Python number). This
        default goes through NumPy (no gradient; enough for optimizers); backends override it."""
        import numpy as np
        return self.asarray(np.divide(self._host(a), self._host(b)))

    def sqrt(self, x: Array) -> Array:
        """Elementwise square root. This default goes through NumPy (no gradient); backends
        override it."""
        import numpy as np
        return self.asarray(np.sqrt(self._host(x)))

    def _host(self, x: Any) -> Any:
        return x if isinstance(x, (int, float)) else self.to_numpy(x)

    @abstractmethod
    def tanh(self, x: Array) -> Array:
        """Elementwise hyperbolic tangent."""

    @abstractmethod
    def relu(self, x: Array) -> Array:
        """Elementwise max(x, 0)."""

    @abstractmethod
    def sigmoid(self, x: Array) -> Array:
        """Elementwise logistic function."""

    @abstractmethod
    def zeros(self, shape: Sequence[int]) -> Array:
        """A float array of zeros of ``self.dtype`` on the device."""

    @abstractmethod
    def one_hot(self, ids: Array, depth: int) -> Array:
        """Integer ids of any shape -> float one-hot array with a trailing axis of size ``depth``."""

    @abstractmethod
    def take(self, table: Array, ids: Array) -> Array:
        """Rows of a 2-D ``table`` selected by integer ``ids`` (an embedding lookup)."""

    @abstractmethod
    def concatenate(self, arrays: Sequence[Array], axis: int = 0) -> Array:
        """Join arrays along an existing axis."""

    @abstractmethod
    def reshape(self, x: Array, shape: Sequence[int]) -> Array:
        """Array with the same data and a new shape."""

    @abstractmethod
    def cross_entropy(self, logits: Array, targets: Array) -> Array:
        """Mean softmax cross-entropy of ``logits`` (N, V) against integer ``targets`` (N,): a scalar."""

    # -- autodiff and state -----------------------------------------------------------------
    @abstractmethod
    def value_and_grad(self, fn: LossFn, params: Params) -> tuple[float, Params, Any]:
        """Evaluate ``loss, aux = fn(params)`` and differentiate ``loss`` with respect to ``params``.

        Returns ``(loss as a Python float, {name: gradient}, aux)``; ``aux`` (for example the final
        recurrent state, a tuple of arrays) comes back detached from the graph.
        """

    @abstractmethod
    def detach(self, x: Array) -> Array:
        """Return ``x`` cut from the autodiff graph (the result must be used: MXNet copies)."""

    # -- updates ----------------------------------------------------------------------------
    @abstractmethod
    def sgd_update(self, params: Params, grads: Params, lr: float) -> None:
        """In place: ``params[k] -= lr * grads[k]`` for every name."""

    def adam_update(
        self, params: Params, grads: Params, m: Params, v: Params, lr: float, beta1: float, beta2: float,
        eps: float, step: int,
    ) -> None:
        """Adam (bias-corrected, ``step`` counted from 1), updating the dicts ``params``, ``m`` and ``v``:
        m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²; p -= lr / (1 - b1^step) · m / (sqrt(v / (1 - b2^step)) + eps).

        This default is the rule written once on the op surface (`adam_on_ops`), so it runs on any
        backend; the built-in backends override it with native in-place ops as a fast path (the
        tests hold each to it)."""
        adam_on_ops(self, params, grads, m, v, lr, beta1, beta2, eps, step)

    @abstractmethod
    def global_norm(self, grads: Params) -> float:
        """L2 norm of all gradients taken together, as a Python float."""

    @abstractmethod
    def scale(self, grads: Params, factor: float) -> Params:
        """Gradients multiplied by ``factor`` (in place where the framework allows)."""

    def clip_by_global_norm(self, grads: Params, theta: float | None) -> tuple[Params, Any, Any]:
        """``(gradients rescaled to global norm theta if it is larger, pre-clip norm, whether they
        were rescaled)``; ``theta`` None only measures. The norm and the flag are numbers here; a
        device backend may return them as 0-d arrays so that clipping does not wait for the device."""
        norm = self.global_norm(grads)
        if theta is not None and norm > theta:
            return self.scale(grads, theta / norm), norm, True
        return grads, norm, False

    def accumulate(self, total: Any, value: Any, weight: float = 1.0) -> Any:
        """``total + value * weight`` for the running sums (`seqkit.running`): ``value`` is a
        number or a 0-d array of this backend; the result is a number here. A device backend keeps
        the sum on the device (in float64) so that adding does not wait for the device."""
        return total + float(value) * weight

    # -- optional hooks -----------------------------------------------------------------------
    def fused_network(self, spec: "ModelSpec") -> "Network | None":
        """A fast hand-written network for ``spec.cell`` if this backend has one, else ``None``."""
        return None

    def fused_cells(self) -> tuple[str, ...]:
        """Names of the cells this backend has a fused implementation for."""
        return ()

    def data_parallel(self, world: "World") -> "DataParallel | None":
        """Join the ranks of a data-parallel run (``world``: this process's rank and the world size)
        and return the collectives over this backend's arrays, or None when the backend trains in
        one process only (the default). See `seqkit.distributed`."""
        return None

    def check_network(self, network: "Network", dropout: float) -> None:
        """Raise `seqkit.errors.ConfigError` when this backend's options do not apply to the
        ``network`` chosen for the run (trained with ``dropout``). The default accepts any."""

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings). A no-op on synchronous backends."""


def adam_on_ops(ops: Backend, params: Params, grads: Params, m: Params, v: Params, lr: float, beta1: float,
                beta2: float, eps: float, step: int) -> None:
    """Adam's update rule on the op surface (``add``, ``multiply``, ``subtract``, ``divide``,
    ``sqrt``): new arrays are stored back into ``params``, ``m`` and ``v`` by name."""
    bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
    for name, grad in grads.items():
        m[name] = ops.add(ops.multiply(m[name], beta1), ops.multiply(grad, 1.0 - beta1))
        v[name] = ops.add(ops.multiply(v[name], beta2), ops.multiply(ops.multiply(grad, grad), 1.0 - beta2))
        denominator = ops.add(ops.sqrt(ops.multiply(v[name], 1.0 / bc2)), eps)
        params[name] = ops.subtract(params[name], ops.multiply(ops.divide(m[name], denominator), lr / bc1))
