"""Which backends to run a conformance check on: every installed one, found through the registry."""

from __future__ import annotations

from typing import Iterable

from seqkit.backend import Backend
from seqkit.errors import SeqkitError
from seqkit.plugins import Registry, get_registry


def installed_backends(registry: Registry | None = None) -> list[str]:
    """Names of the registered backends whose framework is installed here (NumPy first), for
    ``pytest.mark.parametrize``. Frameworks are not imported: availability is checked by module spec."""
    registry = registry or get_registry()
    names = [c.name for c in registry.components("backend") if c.unavailable_reason is None]
    return sorted(names, key=lambda n: (n != "numpy", n))


def make_backend(name: str | Backend, dtype: str = "float64", registry: Registry | None = None) -> Backend:
    """A CPU backend of ``dtype`` by name (through the registry), or ``name`` itself if it already is one."""
    if isinstance(name, Backend):
        return name
    return (registry or get_registry()).create("backend", name, device="cpu", dtype=dtype)


def usable_backends(names: Iterable[str | Backend] | None = None, dtype: str = "float64",
                    registry: Registry | None = None) -> list[Backend]:
    """Backends to check on: those named (an error if one cannot be built), or every installed one
    that can be built on this machine's CPU."""
    if names is not None:
        return [make_backend(n, dtype, registry) for n in names]
    backends = []
    for name in installed_backends(registry):
        try:
            backends.append(make_backend(name, dtype, registry))
        except SeqkitError:  # installed but refusing this machine (e.g. mxnet on numpy 2)
            continue
    return backends
