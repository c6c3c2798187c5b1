"""Data-parallel training over ``torch.distributed``: gloo on the CPU, NCCL on CUDA (one GPU per rank).

The process group is joined once per process from torchrun's environment (``env://``) and left at
exit. Gradients and the loss travel in one flat buffer, one all-reduce per minibatch; the stop
poll is one more (a single integer). Any failed collective becomes a one-line
`seqkit.distributed.DistributedError`, after at most ``SEQKIT_DIST_TIMEOUT`` seconds.
"""

from __future__ import annotations

import atexit
from datetime import timedelta
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from seqkit.backend import Params
from seqkit.distributed import DataParallel, World, lost_ranks, timeout_s

T = TypeVar("T")


def _leave() -> None:
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # the others may be gone already; the process is exiting either way
            pass


def join_process_group(world: World, device: torch.device, timeout: float) -> None:
    """Join torchrun's process group (gloo for CPU tensors, NCCL for CUDA ones), once per process."""
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timedelta(seconds=timeout))
    else:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout))
    atexit.register(_leave)


class TorchDataParallel(DataParallel):
    """`DataParallel` over torch.distributed for one `seqkit_torch.backend.TorchBackend`."""

    def __init__(self, backend: Any, world: World) -> None:
        super().__init__(world)
        self.device = backend.torch_device
        self.timeout = timeout_s()
        self._run("joining the process group", lambda: join_process_group(world, self.device, self.timeout))
        joined = dist.get_world_size()
        if joined != world.world_size:
            raise lost_ranks(world, "joining the process group", RuntimeError(
                f"the group has {joined} ranks, WORLD_SIZE says {world.world_size}"), self.timeout)

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (RuntimeError, ValueError) as exc:  # torch's DistBackendError/DistNetworkError are RuntimeErrors
            raise lost_ranks(self.world, what, exc, self.timeout) from None

    def average(self, loss: float, grads: Params) -> tuple[float, Params]:
        names = list(grads)
        shapes = [grads[k].shape for k in names]
        first = grads[names[0]]
        flat = torch.cat([grads[k].reshape(-1) for k in names] +
                         [torch.tensor([loss], dtype=first.dtype, device=first.device)])
        self._run("averaging gradients", lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM))
        flat.div_(self.world.world_size)
        parts = torch.split(flat, [s.numel() for s in shapes] + [1])
        averaged = {k: part.view(shape) for k, part, shape in zip(names, parts, shapes)}
        return float(parts[-1]), averaged

    def average_scalar(self, value: float) -> float:
        buf = torch.tensor([value], dtype=torch.float64, device=self.device)
        self._run("averaging the loss", lambda: dist.all_reduce(buf, op=dist.ReduceOp.SUM))
        return float(buf) / self.world.world_size

    def gather_rows(self, arrays: tuple) -> tuple:
        gathered = []
        for array in arrays:
            local = array.detach().contiguous()
            parts = [torch.empty_like(local) for _ in range(self.world.world_size)]
            self._run("gathering the carried state", lambda: dist.all_gather(parts, local))
            gathered.append(torch.cat(parts, dim=0))
        return tuple(gathered)

    def shard_rows(self, arrays: tuple) -> tuple:
        return tuple(a[self.rows(a.shape[0])].contiguous() for a in arrays)

    def agree_stop(self, signum: int | None) -> int | None:
        flag = torch.tensor([signum or 0], dtype=torch.int64, device=self.device)
        self._run("agreeing on a stop request", lambda: dist.all_reduce(flag, op=dist.ReduceOp.MAX))
        return int(flag) or None
