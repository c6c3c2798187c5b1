"""The MXNet backend: the op surface on ``mx.nd``, differentiated by ``mx.autograd``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from seqkit.backend import Array, Backend, LossFn, Params, map_leaves
from seqkit.errors import ConfigError
from seqkit_mxnet.compat import import_mxnet

if TYPE_CHECKING:
    from seqkit.network import ModelSpec, Network

mx = import_mxnet()
nd = mx.nd

DTYPES = ("float32", "float64")
FUSED_CELLS = ("rnn-relu", "rnn-tanh")
_GPU_DEVICE = re.compile(r"(?:gpu|cuda)(?::(\d+))?")


def num_gpus() -> int:
    """GPUs MXNet can use (0 on a CPU-only build or when the driver is missing)."""
    try:
        return int(mx.context.num_gpus())
    except Exception:  # a CUDA build without a usable driver raises MXNetError
        return 0


def resolve_device(device: str) -> tuple[Any, str]:
    """``auto | cpu | gpu | gpu:N`` (``cuda``/``cuda:N`` as aliases) -> (MXNet context, resolved name)."""
    spec = device.strip().lower()
    if spec == "auto":
        spec = "gpu:0" if num_gpus() > 0 else "cpu"
    if spec == "cpu":
        return mx.cpu(), "cpu"
    match = _GPU_DEVICE.fullmatch(spec)
    if match is None:
        raise ConfigError(f"unknown device {device!r} for the mxnet backend; use auto, cpu, gpu or gpu:N")
    index = int(match.group(1) or 0)
    count = num_gpus()
    if index >= count:
        seen = f"{count} GPU(s) (gpu:0 to gpu:{count - 1})" if count else "no GPU (CPU-only build or no driver)"
        raise ConfigError(f"device {device!r} is not available: MXNet sees {seen}; use --device cpu or auto")
    return mx.gpu(index), f"gpu:{index}"


def _detach(x: Any) -> Any:
    return x.detach() if isinstance(x, nd.NDArray) else x


class MxnetBackend(Backend):
    """MXNet 1.9 ``mx.nd`` arrays on a CPU or GPU context. Any cell is differentiated by
    ``mx.autograd``; rnn-tanh/rnn-relu also run on MXNet's fused RNN operator
    (`seqkit_mxnet.fused.FusedRNN`). Scalars (losses) are shape-(1,) arrays, MXNet's convention."""

    name = "mxnet"
    description = "MXNet 1.9 (CPU or GPU); mx.autograd for any cell, the fused RNN operator for rnn-tanh/rnn-relu"

    def __init__(self, device: str = "auto", dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not supported; use one of: {', '.join(DTYPES)}")
        self.ctx, resolved = resolve_device(device)
        super().__init__(device=resolved, dtype=dtype)

    # -- conversion -------------------------------------------------------------------------
    def asarray(self, array: np.ndarray) -> Array:
        if isinstance(array, nd.NDArray):
            array = array.asnumpy()
        array = np.asarray(array)
        dtype = np.int64 if array.dtype.kind in "iub" else self.dtype
        return nd.array(array, ctx=self.ctx, dtype=dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        return x.asnumpy() if isinstance(x, nd.NDArray) else np.array(x)

    # -- op surface -------------------------------------------------------------------------
    def matmul(self, a: Array, b: Array) -> Array:
        return nd.dot(a, b)

    def add(self, a: Array, b: Array) -> Array:
        return a + b if _scalar(a) or _scalar(b) else nd.broadcast_add(a, b)

    def multiply(self, a: Array, b: Array) -> Array:
        return a * b if _scalar(a) or _scalar(b) else nd.broadcast_mul(a, b)

    def subtract(self, a: Array, b: Array) -> Array:
        return a - b if _scalar(a) or _scalar(b) else nd.broadcast_sub(a, b)

    def divide(self, a: Array, b: Array) -> Array:
        return a / b if _scalar(a) or _scalar(b) else nd.broadcast_div(a, b)

    def sqrt(self, x: Array) -> Array:
        return nd.sqrt(x)

    def tanh(self, x: Array) -> Array:
        return nd.tanh(x)

    def relu(self, x: Array) -> Array:
        return nd.relu(x)

    def sigmoid(self, x: Array) -> Array:
        return nd.sigmoid(x)

    def zeros(self, shape: Sequence[int]) -> Array:
        return nd.zeros(tuple(shape), ctx=self.ctx, dtype=self.dtype)

    def one_hot(self, ids: Array, depth: int) -> Array:
        return nd.one_hot(ids, depth, dtype=self.dtype)

    def take(self, table: Array, ids: Array) -> Array:
        return nd.take(table, ids, axis=0)

    def concatenate(self, arrays: Sequence[Array], axis: int = 0) -> Array:
        return nd.concat(*arrays, dim=axis)

    def reshape(self, x: Array, shape: Sequence[int]) -> Array:
        return x.reshape(tuple(shape))

    def cross_entropy(self, logits: Array, targets: Array) -> Array:
        return -nd.pick(nd.log_softmax(logits, axis=1), targets, axis=1).mean()

    # -- autodiff and state -----------------------------------------------------------------
    def value_and_grad(self, fn: LossFn, params: Params) -> tuple[float, Params, Any]:
        for param in params.values():
            param.attach_grad()  # fresh buffers: the gradients handed out stay valid after the next call
        with mx.autograd.record():
            loss, aux = fn(params)
        loss.backward()
        grads = {name: param.grad for name, param in params.items()}
        return float(loss.asscalar()), grads, map_leaves(_detach, aux)

    def detach(self, x: Array) -> Array:
        return x.detach()

    # -- updates ----------------------------------------------------------------------------
    def sgd_update(self, params: Params, grads: Params, lr: float) -> None:
        for name, grad in grads.items():
            param = params[name]
            if param.dtype == np.float32:
                nd.sgd_update(param, grad, lr=lr, wd=0.0, rescale_grad=1.0, out=param)
            else:  # sgd_update casts lr to float32; keep float64 exact
                param -= lr * grad

    def adam_update(self, params: Params, grads: Params, m: Params, v: Params, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        # Not nd.adam_update: it has no bias correction and adds eps outside the corrected sqrt.
        bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        for name, grad in grads.items():
            m_, v_ = m[name], v[name]
            m_[:] = beta1 * m_ + (1.0 - beta1) * grad
            v_[:] = beta2 * v_ + (1.0 - beta2) * grad * grad
            params[name][:] = params[name] - (lr / bc1) * m_ / (nd.sqrt(v_ / bc2) + eps)

    def global_norm(self, grads: Params) -> float:
        norms = [nd.norm(g).reshape((1,)) for g in grads.values()]
        return float(nd.norm(nd.concat(*norms, dim=0)).asscalar())

    def scale(self, grads: Params, factor: float) -> Params:
        for grad in grads.values():
            grad *= factor
        return grads

    def synchronize(self) -> None:
        nd.waitall()

    # -- fused path -------------------------------------------------------------------------
    def fused_cells(self) -> tuple[str, ...]:
        return FUSED_CELLS

    def fused_network(self, spec: "ModelSpec") -> "Network | None":
        if spec.cell.name not in FUSED_CELLS:
            return None
        from seqkit_mxnet.fused import FusedRNN

        return FusedRNN(self, spec)


def _scalar(x: Any) -> bool:
    """A Python number (the broadcast ops need arrays on both sides; the operators take numbers)."""
    return isinstance(x, (int, float))
