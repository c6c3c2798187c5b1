"""The torch backend: the op surface on torch tensors, differentiated by torch autograd."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seqkit.backend import Array, Backend, LossFn, Params, map_leaves
from seqkit.errors import ConfigError
from seqkit_torch import TORCH_OPTIONS
from seqkit_torch.devices import oom_to_advice, resolve_device

if TYPE_CHECKING:
    from seqkit.distributed import DataParallel, World
    from seqkit.network import ModelSpec, Network

DTYPES = {"float32": torch.float32, "float64": torch.float64}
FUSED_CELLS = ("rnn-relu", "rnn-tanh")
MATMUL_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}
#: Minibatches between the fit loop's reads of the loss on CUDA (`Backend.host_check_interval`).
CUDA_HOST_CHECK_INTERVAL = 25


def cpu_has_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (oneDNN's own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _detach(x: Any) -> Any:
    return x.detach() if isinstance(x, torch.Tensor) else x


class TorchBackend(Backend):
    """PyTorch on the CPU or a CUDA device.

    Any cell runs through torch autograd (``--impl scratch``). The built-in RNN cells also have a
    fused network: a hand-batched BPTT in torch ops on the CPU (`seqkit_torch.fused.FusedRNN`)
    and ``torch.nn.RNN`` (cuDNN) on CUDA (`seqkit_torch.module.ModuleRNN`); both give the scratch
    path's numbers. torch's thread settings are left as the caller set them.
    """

    name = "torch"
    description = "PyTorch on CPU or CUDA; autograd for any cell, fused BPTT / cuDNN for rnn-tanh/rnn-relu"
    options = TORCH_OPTIONS

    def __init__(self, device: str = "auto", dtype: str = "float32", matmul_dtype: str = "float32",
                 cuda_graphs: bool = False) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not supported; use one of: {', '.join(DTYPES)}")
        if matmul_dtype not in MATMUL_DTYPES:
            raise ConfigError(f"matmul dtype {matmul_dtype!r} is not supported; use one of: {', '.join(MATMUL_DTYPES)}")
        super().__init__(device=resolve_device(device), dtype=dtype)
        self.torch_device = torch.device(self.device)
        self.torch_dtype = DTYPES[dtype]
        self.is_cuda = self.torch_device.type == "cuda"
        self.host_check_interval = CUDA_HOST_CHECK_INTERVAL if self.is_cuda else 1
        self.matmul_dtype = matmul_dtype
        #: The dtype matrix products run in (None: ``torch_dtype``, no casts).
        self.product_dtype = MATMUL_DTYPES[matmul_dtype]
        if self.product_dtype is not None:
            self._check_bfloat16()
        #: Whether the fused CUDA network replays CUDA graphs (`seqkit_torch.graphs`).
        self.cuda_graphs = bool(cuda_graphs)
        if self.cuda_graphs and not self.is_cuda:
            raise ConfigError(f"--cuda-graphs needs a CUDA device, and this run is on {self.device}: "
                              "leave --cuda-graphs out (or add --device cuda on a machine with a GPU)")

    def _check_bfloat16(self) -> None:
        if self.is_cuda:
            raise ConfigError("--matmul-dtype bfloat16 is implemented for the CPU only; on CUDA use float32 "
                              "(cuDNN's nn.RNN runs the fused path there)")
        if not cpu_has_bfloat16():
            raise ConfigError("this CPU has no native bfloat16 (AVX512-BF16 or AMX), so bfloat16 products "
                              "would be slower than float32: leave --matmul-dtype at float32")

    # -- conversion -------------------------------------------------------------------------
    @oom_to_advice
    def asarray(self, array: np.ndarray) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.asarray(array)
        dtype = torch.int64 if array.dtype.kind in "iub" else self.torch_dtype
        return torch.tensor(array, dtype=dtype, device=self.torch_device)

    def to_numpy(self, x: Array) -> np.ndarray:
        if not isinstance(x, torch.Tensor):
            return np.array(x)
        x = x.detach()
        if x.device.type == "cpu":
            return x.numpy().copy()
        return x.cpu().numpy()

    # -- op surface -------------------------------------------------------------------------
    @oom_to_advice
    def matmul(self, a: Array, b: Array) -> Array:
        if self.product_dtype is not None:
            return torch.matmul(a.to(self.product_dtype), b.to(self.product_dtype)).to(a.dtype)
        return torch.matmul(a, b)

    def add(self, a: Array, b: Array) -> Array:
        return a + b

    def multiply(self, a: Array, b: Array) -> Array:
        return a * b

    def subtract(self, a: Array, b: Array) -> Array:
        return a - b

    def divide(self, a: Array, b: Array) -> Array:
        return a / b

    def sqrt(self, x: Array) -> Array:
        return torch.sqrt(x)

    def tanh(self, x: Array) -> Array:
        return torch.tanh(x)

    def relu(self, x: Array) -> Array:
        return torch.relu(x)

    def sigmoid(self, x: Array) -> Array:
        return torch.sigmoid(x)

    @oom_to_advice
    def zeros(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=self.torch_dtype, device=self.torch_device)

    def _index(self, ids: Array) -> torch.Tensor:
        if isinstance(ids, torch.Tensor):
            return ids.long()
        return torch.as_tensor(np.asarray(ids), dtype=torch.int64, device=self.torch_device)

    @oom_to_advice
    def one_hot(self, ids: Array, depth: int) -> torch.Tensor:
        return F.one_hot(self._index(ids), depth).to(self.torch_dtype)

    @oom_to_advice
    def take(self, table: Array, ids: Array) -> Array:
        return F.embedding(self._index(ids), table)

    @oom_to_advice
    def concatenate(self, arrays: Sequence[Array], axis: int = 0) -> Array:
        return torch.cat(list(arrays), dim=axis)

    def reshape(self, x: Array, shape: Sequence[int]) -> Array:
        return torch.reshape(x, tuple(shape))

    @oom_to_advice
    def cross_entropy(self, logits: Array, targets: Array) -> Array:
        return F.cross_entropy(logits, self._index(targets))

    # -- autodiff and state -----------------------------------------------------------------
    @oom_to_advice
    def value_and_grad(self, fn: LossFn, params: Params) -> tuple[float, Params, Any]:
        names = list(params)
        leaves = {k: params[k].detach().requires_grad_(True) for k in names}
        with torch.enable_grad():
            loss, aux = fn(leaves)
            found = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
        grads = {k: torch.zeros_like(params[k]) if g is None else g for k, g in zip(names, found)}
        return float(loss.detach()), grads, map_leaves(_detach, aux)

    def detach(self, x: Array) -> Array:
        return x.detach()

    # -- updates ----------------------------------------------------------------------------
    def sgd_update(self, params: Params, grads: Params, lr: float) -> None:
        with torch.no_grad():
            for name, grad in grads.items():
                params[name].sub_(grad, alpha=lr)

    def adam_update(self, params: Params, grads: Params, m: Params, v: Params, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        with torch.no_grad():
            for name, grad in grads.items():
                m[name].mul_(beta1).add_(grad, alpha=1.0 - beta1)
                v[name].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = (v[name] / bc2).sqrt_().add_(eps)
                params[name].addcdiv_(m[name], denom, value=-lr / bc1)

    def global_norm(self, grads: Params) -> float:
        with torch.no_grad():
            norms = [torch.linalg.vector_norm(g) for g in grads.values()]
            return float(torch.linalg.vector_norm(torch.stack(norms)))

    def scale(self, grads: Params, factor: float) -> Params:
        with torch.no_grad():
            for grad in grads.values():
                grad.mul_(factor)
        return grads

    def clip_by_global_norm(self, grads: Params, theta: float | None) -> tuple[Params, Any, Any]:
        """Where the fit loop does not read every minibatch (``host_check_interval`` > 1, CUDA):
        on the device, the norm and the flag as 0-d tensors and the gradients multiplied by a device
        factor (exactly 1 when not clipped), so nothing waits for the device. Otherwise on the host,
        which skips that multiplication when nothing is clipped."""
        if self.host_check_interval <= 1:
            return super().clip_by_global_norm(grads, theta)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
            if theta is None:
                return grads, norm, False
            wide = norm.to(torch.float64)  # the comparison and the factor in float64, as on the host
            clipped = wide > theta
            factor = torch.where(clipped, theta / wide, torch.ones_like(wide))
            for grad in grads.values():
                grad.mul_(factor)
        return grads, norm, clipped

    def accumulate(self, total: Any, value: Any, weight: float = 1.0) -> Any:
        """Sums of 0-d tensors stay on their device, in float64."""
        if not isinstance(value, torch.Tensor):
            return super().accumulate(total, value, weight)
        # multiply, then add, as the host's `total + value * weight` rounds (no fused multiply-add)
        return value.detach().to(torch.float64) * weight + total

    def data_parallel(self, world: "World") -> "DataParallel":
        """torch.distributed: gloo on the CPU, NCCL on CUDA (see `seqkit_torch.distributed`)."""
        from seqkit_torch.distributed import TorchDataParallel

        return TorchDataParallel(self, world)

    def check_network(self, network: "Network", dropout: float) -> None:
        """``--cuda-graphs`` applies to the fused network only."""
        if self.cuda_graphs and network.impl != "fused":
            raise ConfigError("--cuda-graphs applies to the fused network of rnn-tanh and rnn-relu, and this "
                              f"run uses --impl {network.impl} (cell {network.spec.cell.name!r}): leave "
                              "--cuda-graphs out or use --impl fused")

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.torch_device)

    # -- fused path -------------------------------------------------------------------------
    def fused_cells(self) -> tuple[str, ...]:
        return FUSED_CELLS

    def fused_network(self, spec: "ModelSpec") -> "Network | None":
        """CPU: the hand-batched BPTT; CUDA: ``nn.RNN`` (cuDNN) with the same numbers."""
        if spec.cell.name not in FUSED_CELLS:
            return None
        if self.is_cuda:
            from seqkit_torch.module import ModuleRNN

            return ModuleRNN(self, spec)
        from seqkit_torch.fused import FusedRNN

        return FusedRNN(self, spec)
