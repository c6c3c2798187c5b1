"""Memory a training configuration needs, and the refusal when the machine or device lacks it.

`estimate_memory` adds up what training holds at its peak: the parameters, their gradients and
the optimizer's slots, and the activations of one minibatch (B×T×H hidden states, B×T×V logits
and their gradients, the inputs, the fused paths' buffers). `check_memory` compares that with
`available_memory` (``MemAvailable`` of /proc/meminfo within any cgroup limit, else
``os.sysconf``) or, on a CUDA device, the device's free memory, and raises `ConfigError` with
the figure and what to lower, before anything is allocated. The estimate is calibrated against
the peak resident memory of real runs (tests/test_resources.py), not exact to the byte.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from seqkit.errors import ConfigError
from seqkit.limits import describe_size

if TYPE_CHECKING:
    from seqkit.backend import Backend
    from seqkit.config import RunConfig
    from seqkit.network import ModelSpec

__all__ = ["MemoryEstimate", "Workload", "available_memory", "check_memory", "device_free_memory",
           "estimate_memory"]


@dataclass(frozen=True)
class Workload:
    """The sizes that decide training memory: vocabulary V, hidden H, embedding E (0 = one-hot),
    batch B, steps per graph T, bytes per float, optimizer slots per parameter, the path."""

    vocab: int
    hidden: int
    embedding: int
    batch: int
    steps: int
    itemsize: int = 4
    slots: int = 0
    fused: bool = True
    num_params: int | None = None  # None: the vanilla RNN's count from the sizes above

    @property
    def params(self) -> int:
        """The number of parameters (given, or the vanilla RNN's)."""
        if self.num_params is not None:
            return self.num_params
        inputs = self.embedding or self.vocab
        return inputs * self.hidden + self.hidden * self.hidden + self.hidden + self.hidden * self.vocab \
            + self.vocab + self.vocab * self.embedding


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes at the peak (``total``) and the parts that make it up (``parts``)."""

    parts: dict[str, int]
    total: int

    def describe(self) -> str:
        shown = ", ".join(f"{name} {describe_size(size)}" for name, size in self.parts.items() if size)
        return f"{describe_size(self.total)} ({shown})"


def estimate_memory(w: Workload) -> MemoryEstimate:
    """Peak bytes training ``w`` needs (pure arithmetic, no allocation)."""
    s, B, T, H, V, E = w.itemsize, w.batch, w.steps, w.hidden, w.vocab, w.embedding
    P = w.params
    if w.fused:
        # Hs (T+1), pre-activations / their gradient, activation derivative, carry and the
        # backward pass' temporaries: about (4T+2)·B·H; logits and their gradient over all steps;
        # the gathered input table or the embedded inputs and their gradient.
        activations = (4 * T + 2) * B * H + 2 * T * B * V + (2 * T * B * E if E else V * H)
    else:
        # Generic autodiff keeps every step's intermediates: the input (one-hot B×V or embedded B×E),
        # about five B×H arrays per step, the concatenated outputs, and the logits with the softmax
        # and cross-entropy intermediates and their gradients.
        activations = T * B * ((E or V) + 8 * H + 6 * V)
    # Clipping scales the gradients into new arrays: one more parameter-sized set while it runs.
    # (That also covers the float64 draw of the initial values: ModelSpec.init_params.)
    parts = {"parameters": P * s, "gradients": 2 * P * s, "optimizer slots": w.slots * P * s,
             "activations": activations * s}
    return MemoryEstimate(parts, sum(parts.values()))


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom(root: str = "/sys/fs/cgroup") -> int | None:
    """Bytes left under this process' cgroup memory limit (v2 or v1), or None when unlimited."""
    for limit_name, usage_name in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = Path(root, limit_name).read_text().strip()
            usage = int(Path(root, usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
            return None
        return max(0, int(limit) - usage)
    return None


def available_memory() -> int | None:
    """Bytes of RAM that can be allocated now without swapping: ``MemAvailable`` from
    /proc/meminfo (else free pages from ``os.sysconf``), capped by the cgroup limit; None if
    the platform tells neither."""
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    headroom = _cgroup_headroom()
    if headroom is not None:
        available = headroom if available is None else min(available, headroom)
    return available


def device_free_memory(backend: "Backend") -> int | None:
    """Free bytes on the backend's accelerator (torch CUDA, MXNet GPU), or None for the CPU or
    when the framework cannot tell. Imports nothing the backend has not imported already."""
    device = str(getattr(backend, "device", "cpu"))
    if not device.startswith(("cuda", "gpu")):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        if "torch" in sys.modules and device.startswith("cuda"):
            free, _ = sys.modules["torch"].cuda.mem_get_info(index)
            return int(free)
        if "mxnet" in sys.modules:
            free, _ = sys.modules["mxnet"].context.gpu_memory_info(index)
            return int(free)
    except Exception:  # a driver that cannot answer: no check rather than a crash
        return None
    return None


def workload(config: "RunConfig", spec: "ModelSpec", backend: "Backend", slots: int = 0,
             whole_epoch_steps: int | None = None) -> Workload:
    """The `Workload` of a run: sizes from ``spec`` and ``config``, the path the backend will take
    (fused when asked or ``auto`` and it has one for the cell), and the steps one graph spans
    (``whole_epoch_steps`` when --no-detach reruns the epoch so far)."""
    fused = config.impl != "scratch" and spec.cell.name in backend.fused_cells()
    num_params = sum(_prod(p.shape) for p in spec.param_specs().values())
    steps = whole_epoch_steps if whole_epoch_steps else config.num_steps
    itemsize = 8 if config.dtype == "float64" else 4
    return Workload(spec.vocab_size, spec.hidden_size, spec.embedding_dim, config.batch_size, steps,
                    itemsize, slots, fused, num_params)


def _prod(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _largest_hidden(estimate_for: Callable[[int], int], available: int, upper: int) -> int:
    """The largest hidden width below ``upper`` whose estimate fits in ``available``, or 0."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_for(mid) <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _advice(w: Workload, est: MemoryEstimate, best_hidden: int, whole_epoch: bool) -> str:
    """The options to lower, the biggest lever first."""
    levers = [f"--hidden ({best_hidden:,} fits)" if best_hidden else "--hidden"]
    if est.parts["activations"] >= est.parts["parameters"] or not best_hidden:
        levers += ["--batch-size", "--num-steps"]
        if whole_epoch:
            levers.append("drop --no-detach")
    if w.embedding and w.vocab * w.embedding * w.itemsize * (3 + w.slots) > est.total // 4:
        levers.append("--embedding")
    if w.vocab > 10_000:
        levers.append("the vocabulary (--max-tokens, or --tokens char)")
    if est.parts["optimizer slots"] > est.total // 4:
        levers.append("the optimizer's slots (--optimizer sgd)")
    if w.itemsize == 8:
        levers.append("--dtype float32")
    return ", ".join(levers[:-1]) + (" or " if len(levers) > 1 else "") + levers[-1]


def check_memory(config: "RunConfig", spec: "ModelSpec", backend: "Backend", optimizer: Any = None,
                 sampler: Any = None, train_tokens: int = 0, available: int | None = None) -> MemoryEstimate:
    """Raise `ConfigError` when training ``spec`` with ``config`` on ``backend`` needs more memory
    than the device has free (CUDA/GPU) or the machine has available (CPU); return the estimate.

    ``optimizer`` (its ``slots``), ``sampler`` (``carries_state``) and ``train_tokens`` refine it:
    with --no-detach a sequential sampler's graph spans the whole epoch. ``available`` overrides
    the measured free bytes."""
    whole_epoch = bool(config.no_detach and sampler is not None and getattr(sampler, "carries_state", False))
    steps = max(config.num_steps, train_tokens // max(config.batch_size, 1)) if whole_epoch else None
    w = workload(config, spec, backend, len(getattr(optimizer, "slots", ()) or ()), steps)
    est = estimate_memory(w)
    where = f"free on {backend.device}"
    if available is None:
        available = device_free_memory(backend)
        if available is None:
            available, where = available_memory(), "available on this machine"
    if available is not None and est.total > available:
        def estimate_for(hidden: int) -> int:
            trial = dataclasses.replace(spec, hidden_size=hidden)
            return estimate_memory(workload(config, trial, backend, w.slots, steps)).total

        best = _largest_hidden(estimate_for, available, spec.hidden_size - 1)
        raise ConfigError(
            f"this configuration needs about {est.describe()} of memory but {describe_size(available)} is "
            f"{where}: lower {_advice(w, est, best, whole_epoch)}")
    return est
