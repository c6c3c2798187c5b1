"""The plugin manager and the component registry built from it.

Nothing happens at import: `get_registry()` builds (once) a pluggy `PluginManager` that loads the
``seqkit`` entry-point group — built-in plugins included — and collects the components every
plugin registers. ``SEQKIT_LOAD_PLUGINS=name1,name2`` restricts which entry points are loaded.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import pluggy

from seqkit import hookspecs
from seqkit.backend import Backend
from seqkit.cell import Cell
from seqkit.clipper import Clipper
from seqkit.corpus import Corpus
from seqkit.decoder import Decoder
from seqkit.errors import PluginError, UnavailableError
from seqkit.optimizer import Optimizer
from seqkit.sampler import Sampler

ENTRY_POINT_GROUP = "seqkit"
LOAD_ENV = "SEQKIT_LOAD_PLUGINS"

# kind -> (hook name, interface, option that selects it)
KINDS: dict[str, tuple[str, type, str]] = {
    "backend": ("register_backends", Backend, "--backend"),
    "corpus": ("register_corpora", Corpus, "--corpus"),
    "sampler": ("register_samplers", Sampler, "--sampler"),
    "cell": ("register_cells", Cell, "--cell"),
    "clipper": ("register_clippers", Clipper, "--clipper"),
    "decoder": ("register_decoders", Decoder, "--decoder"),
    "optimizer": ("register_optimizers", Optimizer, "--optimizer"),
}


class LazyComponent:
    """A component whose class is imported only when first used.

    ``target`` is ``"package.module:ClassName"``; ``requires`` lists the top-level modules it
    needs (checked without importing them); ``install_hint`` says how to get them.
    """

    def __init__(
        self, name: str, target: str, *, requires: Iterable[str] = (), install_hint: str = "",
        description: str = "",
    ) -> None:
        self.name = name
        self.target = target
        self.requires = tuple(requires)
        self.install_hint = install_hint
        self.description = description

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [mod for mod in self.requires if importlib.util.find_spec(mod) is None]

    def load(self) -> type:
        module_name, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)


@dataclass
class Component:
    """One registered component: its kind, name, providing plugin and (lazy) class."""

    kind: str
    name: str
    plugin: str
    factory: Any
    description: str = ""

    @property
    def unavailable_reason(self) -> str | None:
        if isinstance(self.factory, LazyComponent):
            missing = self.factory.missing()
            if missing:
                hint = self.factory.install_hint or f"pip install {' '.join(missing)}"
                return f"{', '.join(missing)} not installed; install with: {hint}"
        return None

    def load(self) -> type:
        if isinstance(self.factory, LazyComponent):
            reason = self.unavailable_reason
            if reason:
                raise UnavailableError(f"{self.kind} {self.name!r} is unavailable: {reason}")
            return self.factory.load()
        return self.factory


@dataclass
class PluginInfo:
    """A loaded (or failed) plugin: name, origin, implemented hooks, components, error."""

    name: str
    origin: str
    hooks: list[str] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    error: str | None = None
    install_hint: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None


def _install_hint(ep: importlib.metadata.EntryPoint, exc: BaseException) -> str | None:
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if not missing:
        return None
    top = missing.split(".")[0]
    dist = ep.dist
    if dist is not None:
        for req in dist.requires or []:
            name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("-", "_")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            if name == top.lower() and extra:
                return f"pip install '{dist.metadata['Name']}[{extra.group(1)}]'"
    return f"pip install {top}"


def make_plugin_manager(
    extra_plugins: Iterable[tuple[str, object]] = (), load_entry_points: bool = True
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A fresh PluginManager with the ``seqkit`` entry points (and ``extra_plugins``) registered.

    Returns the manager and the plugins that failed to import, each with its reason and hint."""
    pm = pluggy.PluginManager("seqkit")
    pm.add_hookspecs(hookspecs)
    failures: list[PluginInfo] = []
    if load_entry_points:
        wanted = os.environ.get(LOAD_ENV)
        allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        seen: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allowed is not None and ep.name not in allowed) or ep.name in seen:
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                failures.append(PluginInfo(
                    name=ep.name, origin=ep.value, error=f"{type(exc).__name__}: {exc}",
                    install_hint=_install_hint(ep, exc)))
                continue
            pm.register(plugin, name=ep.name)
    for name, plugin in extra_plugins:
        pm.register(plugin, name=name)
    return pm, failures


class Registry:
    """Every component the loaded plugins registered, looked up by kind and name."""

    def __init__(self, pm: pluggy.PluginManager, failures: list[PluginInfo] = ()) -> None:
        self.plugins: dict[str, PluginInfo] = {}
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        for plugin_name, plugin in pm.list_name_plugin():
            origin = getattr(plugin, "__name__", type(plugin).__name__)
            self.plugins[plugin_name] = PluginInfo(name=plugin_name, origin=origin)
        for kind, (hook_name, interface, _) in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                info = self.plugins[impl.plugin_name]
                info.hooks.append(hook_name)
                impl.function(register=self._register_callback(kind, interface, info))
        for failure in failures:
            self.plugins[failure.name] = failure

    def _register_callback(self, kind: str, interface: type, info: PluginInfo):
        def register(factory: Any, name: str | None = None) -> None:
            comp_name = name or getattr(factory, "name", "")
            if not comp_name:
                raise PluginError(f"plugin {info.name!r} registered a {kind} without a name")
            if not isinstance(factory, LazyComponent) and not (
                inspect.isclass(factory) and issubclass(factory, interface)
            ):
                raise PluginError(
                    f"plugin {info.name!r} registered {kind} {comp_name!r} that is not a "
                    f"{interface.__name__} subclass")
            existing = self._components[kind].get(comp_name)
            if existing is not None:
                raise PluginError(
                    f"{kind} {comp_name!r} is registered by both plugin {existing.plugin!r} and "
                    f"plugin {info.name!r}; uninstall one of them")
            description = getattr(factory, "description", "") or (
                (inspect.getdoc(factory) or "").splitlines()[0] if inspect.isclass(factory) else "")
            component = Component(kind, comp_name, info.name, factory, description)
            self._components[kind][comp_name] = component
            info.components.append(component)

        return register

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted (available or not)."""
        return sorted(self._components[kind])

    def component(self, kind: str, name: str) -> Component:
        """The component, or a `PluginError` that lists the valid names."""
        try:
            return self._components[kind][name]
        except KeyError:
            option = KINDS[kind][2]
            valid = ", ".join(self.names(kind)) or "(none installed)"
            broken = [p.name for p in self.plugins.values() if not p.available]
            extra = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
            raise PluginError(f"unknown {kind} {name!r} for {option}; choose one of: {valid}{extra}") from None

    def get(self, kind: str, name: str) -> type:
        """The component's class (imported now if lazy); errors name the valid choices or the fix."""
        return self.component(kind, name).load()

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Instantiate a component, passing only the ``options`` its constructor accepts."""
        cls = self.get(kind, name)
        params = inspect.signature(cls).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = {k: v for k, v in options.items() if takes_all or k in params}
        return cls(**accepted)


def build_registry(
    extra_plugins: Iterable[tuple[str, object]] = (), load_entry_points: bool = True
) -> Registry:
    """A new registry from the entry points plus ``extra_plugins`` (name, module-or-object) pairs."""
    pm, failures = make_plugin_manager(extra_plugins, load_entry_points)
    return Registry(pm, failures)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry()
