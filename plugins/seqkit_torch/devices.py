"""Device strings for the torch backend, and out-of-memory errors turned into advice."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, TypeVar

import torch

from seqkit.errors import ConfigError, SeqkitError

F = TypeVar("F", bound=Callable[..., Any])
VALID = "auto, cpu, cuda or cuda:N"


class DeviceMemoryError(SeqkitError):
    """The device ran out of memory; the message says which options to lower."""


def resolve_device(device: str) -> str:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> ``"cpu"`` or ``"cuda:N"``; `ConfigError` if unusable."""
    text = str(device).strip().lower()
    if text == "auto":
        return f"cuda:{_default_index()}" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ConfigError(f"device {device!r} not understood; use {VALID}")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available to torch {torch.__version__} "
            f"on this machine; use --device cpu (or auto)")
    count = torch.cuda.device_count()
    index = _default_index() if match.group(1) is None else int(match.group(1))
    if index >= count:
        raise ConfigError(
            f"device {device!r} does not exist: {count} CUDA device(s) here; use cuda:0 to cuda:{count - 1}")
    return f"cuda:{index}"


def _default_index() -> int:
    """The current CUDA device, or under a data-parallel launcher the local rank's (one GPU per rank)."""
    from seqkit.distributed import world_from_env

    world = world_from_env()
    if world is not None and world.local_rank < torch.cuda.device_count():
        return world.local_rank
    return torch.cuda.current_device()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's CUDA (or other device) out-of-memory errors."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def memory_error(device: str) -> DeviceMemoryError:
    return DeviceMemoryError(
        f"out of memory on {device}: lower --batch-size, --hidden or --num-steps "
        "(or use --device cpu)")


def oom_to_advice(method: F) -> F:
    """Method decorator: an out-of-memory error becomes a `DeviceMemoryError` naming what to lower.

    Works on backend methods (``self.device``) and network methods (``self.backend.device``)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            device = getattr(self, "device", None) or getattr(getattr(self, "backend", None), "device", "?")
            raise memory_error(device) from exc

    return wrapper  # type: ignore[return-value]
