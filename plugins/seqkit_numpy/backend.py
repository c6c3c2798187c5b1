"""The NumPy backend: the op surface on NumPy arrays, differentiated by `seqkit_numpy.tape`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from seqkit.backend import Array, Backend, LossFn, Params
from seqkit.errors import ConfigError
from seqkit_numpy import tape
from seqkit_numpy.tape import value

if TYPE_CHECKING:
    from seqkit.network import ModelSpec, Network

DTYPES = ("float32", "float64")
FUSED_CELLS = ("rnn-relu", "rnn-tanh")


class NumpyBackend(Backend):
    """NumPy on the CPU. Any cell is differentiated by the op tape (`seqkit_numpy.tape`); the
    built-in RNN cells also have a hand-derived batched BPTT (`seqkit_numpy.fused.FusedRNN`)."""

    name = "numpy"
    description = "NumPy on the CPU; an op tape for any cell, hand-written BPTT for rnn-tanh/rnn-relu"

    def __init__(self, device: str = "auto", dtype: str = "float32") -> None:
        if device not in ("auto", "cpu"):
            raise ConfigError(
                f"device {device!r}: the numpy backend runs on the CPU only; use --device cpu or auto")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not supported; use one of: {', '.join(DTYPES)}")
        super().__init__(device="cpu", dtype=dtype)
        self._np_dtype = np.dtype(dtype)
        self._eye: dict[int, np.ndarray] = {}

    # -- conversion -------------------------------------------------------------------------
    def asarray(self, array: np.ndarray) -> np.ndarray:
        array = np.asarray(value(array))
        if array.dtype.kind in "iub":
            return np.array(array, dtype=np.int64)
        return np.array(array, dtype=self._np_dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.array(value(x))

    # -- op surface -------------------------------------------------------------------------
    def matmul(self, a: Array, b: Array) -> Array:
        return tape.matmul(a, b)

    def add(self, a: Array, b: Array) -> Array:
        return tape.add(a, b)

    def multiply(self, a: Array, b: Array) -> Array:
        return tape.multiply(a, b)

    def subtract(self, a: Array, b: Array) -> Array:
        return tape.subtract(a, b)

    def divide(self, a: Array, b: Array) -> Array:
        return tape.divide(a, b)

    def sqrt(self, x: Array) -> Array:
        return tape.sqrt(x)

    def tanh(self, x: Array) -> Array:
        return tape.tanh(x)

    def relu(self, x: Array) -> Array:
        return tape.relu(x)

    def sigmoid(self, x: Array) -> Array:
        return tape.sigmoid(x)

    def zeros(self, shape: Sequence[int]) -> np.ndarray:
        return np.zeros(tuple(shape), dtype=self._np_dtype)

    def one_hot(self, ids: Array, depth: int) -> np.ndarray:
        eye = self._eye.get(depth)
        if eye is None:
            eye = self._eye[depth] = np.eye(depth, dtype=self._np_dtype)
        return eye[np.asarray(value(ids))]

    def take(self, table: Array, ids: Array) -> Array:
        return tape.take(table, np.asarray(value(ids)))

    def concatenate(self, arrays: Sequence[Array], axis: int = 0) -> Array:
        return tape.concatenate(list(arrays), axis=axis)

    def reshape(self, x: Array, shape: Sequence[int]) -> Array:
        return tape.reshape(x, tuple(shape))

    def cross_entropy(self, logits: Array, targets: Array) -> Array:
        return tape.cross_entropy(logits, np.asarray(value(targets)))

    # -- autodiff and state -----------------------------------------------------------------
    def value_and_grad(self, fn: LossFn, params: Params) -> tuple[float, Params, Any]:
        loss, found, aux = tape.value_and_grad(fn, params)
        grads = {k: np.zeros_like(params[k]) if g is None else np.asarray(g, dtype=params[k].dtype)
                 for k, g in found.items()}
        return float(loss), grads, aux

    def detach(self, x: Array) -> Array:
        return value(x)

    # -- updates ----------------------------------------------------------------------------
    def sgd_update(self, params: Params, grads: Params, lr: float) -> None:
        for name, grad in grads.items():
            if lr == 1.0:
                params[name] -= grad
            else:
                params[name] -= lr * grad

    def adam_update(self, params: Params, grads: Params, m: Params, v: Params, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        for name, grad in grads.items():
            m_, v_ = m[name], v[name]
            m_ *= beta1
            m_ += (1.0 - beta1) * grad
            v_ *= beta2
            v_ += (1.0 - beta2) * grad * grad
            denom = np.sqrt(v_ / bc2)
            denom += eps
            params[name] -= (lr / bc1) * m_ / denom

    def global_norm(self, grads: Params) -> float:
        # Row-wise dot products in the gradients' own dtype (BLAS-speed, and no copy of the
        # strided views the fused network hands out), summed in float64.
        total = 0.0
        for grad in grads.values():
            rows = np.asarray(grad)
            if rows.size == 0:
                continue
            rows = rows.reshape(rows.shape[0], -1) if rows.ndim > 1 else rows.reshape(1, -1)
            total += float(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64))
        return float(np.sqrt(total))

    def scale(self, grads: Params, factor: float) -> Params:
        for grad in grads.values():
            grad *= factor
        return grads

    # -- fused path -------------------------------------------------------------------------
    def fused_cells(self) -> tuple[str, ...]:
        return FUSED_CELLS

    def fused_network(self, spec: "ModelSpec") -> "Network | None":
        if spec.cell.name not in FUSED_CELLS:
            return None
        from seqkit_numpy.fused import FusedRNN

        return FusedRNN(self, spec)
