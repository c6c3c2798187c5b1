"""The plugin manager and the component registry built from it.

Nothing happens at import: `get_registry()` builds (once) a pluggy `PluginManager` that loads the
``seqkit`` entry-point group — built-in plugins included — and collects the components every
plugin registers. ``SEQKIT_LOAD_PLUGINS=name1,name2`` restricts which entry points are loaded;
``SEQKIT_DISABLE_PLUGINS=name1,name2`` leaves those out; ``SEQKIT_PLUGIN_TRACEBACKS=1`` prints the
full traceback of every plugin failure to stderr when the registry is built.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import traceback
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
from seqkit.errors import ConfigError, PluginError, SeqkitError, UnavailableError
from seqkit.logger import LIFECYCLE_HOOKS, Logger
from seqkit.optimizer import Optimizer
from seqkit.options import Option, check_options, nearest
from seqkit.sampler import Sampler
from seqkit.schedule import Schedule

ENTRY_POINT_GROUP = "seqkit"
LOAD_ENV = "SEQKIT_LOAD_PLUGINS"
DISABLE_ENV = "SEQKIT_DISABLE_PLUGINS"
TRACEBACKS_ENV = "SEQKIT_PLUGIN_TRACEBACKS"

# kind -> (hook name, interface, option that selects it)
KINDS: dict[str, tuple[str, type, str]] = {
    "backend": ("register_backends", Backend, "--backend"),
    "corpus": ("register_corpora", Corpus, "--corpus"),
    "sampler": ("register_samplers", Sampler, "--sampler"),
    "cell": ("register_cells", Cell, "--cell"),
    "clipper": ("register_clippers", Clipper, "--clipper"),
    "decoder": ("register_decoders", Decoder, "--decoder"),
    "optimizer": ("register_optimizers", Optimizer, "--optimizer"),
    "schedule": ("register_schedules", Schedule, "--schedule"),
    "logger": ("register_loggers", Logger, "--logger"),
}
_PLAIN_IMPL = {"wrapper": False, "hookwrapper": False, "optionalhook": False, "tryfirst": False, "trylast": False,
               "specname": None}


class SeqkitPluginManager(pluggy.PluginManager):
    """pluggy's manager, plus: a `seqkit.Logger` instance's methods named after the lifecycle hooks
    are hook implementations without markers (a logger is a plain class)."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and isinstance(plugin, Logger) and name in LIFECYCLE_HOOKS:
            return dict(_PLAIN_IMPL)
        return opts


class LazyComponent:
    """A component whose class is imported only when first used.

    ``target`` is ``"package.module:ClassName"``; ``requires`` lists the top-level modules it
    needs (checked without importing them); ``install_hint`` says how to get them; ``options``
    declares the component's options (`seqkit.Option`) so the CLI can list them without the import.
    The class, once loaded, must declare the same options.
    """

    def __init__(
        self, name: str, target: str, *, requires: Iterable[str] = (), install_hint: str = "",
        description: str = "", options: Iterable[Option] = (),
    ) -> None:
        self.name = name
        self.target = target
        self.requires = tuple(requires)
        self.install_hint = install_hint
        self.description = description
        self.options = check_options(f"component {name!r}", options)

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [mod for mod in self.requires if importlib.util.find_spec(mod) is None]

    def load(self) -> type:
        """Import and return the class named by ``target``."""
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
    options: tuple[Option, ...] = ()
    dist: str | None = None

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
            try:
                cls = self.factory.load()
            except Exception as exc:
                raise PluginError(f"{self.kind} {self.name!r} of plugin {self.plugin!r} failed to import "
                                  f"{self.factory.target!r}: {type(exc).__name__}: {exc} (full traceback: "
                                  f"{TRACEBACKS_ENV}=1)") from exc
            loaded = check_options(f"{self.kind} {self.name!r}", getattr(cls, "options", ()))
            if {o.name: o.type for o in loaded} != {o.name: o.type for o in self.options}:
                raise PluginError(f"{self.kind} {self.name!r} of plugin {self.plugin!r}: the class declares options "
                                  f"{sorted(o.name for o in loaded)} but its LazyComponent declares "
                                  f"{sorted(o.name for o in self.options)}; make them the same")
            return cls
        return self.factory


@dataclass
class PluginInfo:
    """A loaded (or failed) plugin: name, origin, distribution, implemented hooks, components and
    the errors recorded against it (a failed import, a refused registration)."""

    name: str
    origin: str
    hooks: list[str] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    error: str | None = None
    install_hint: str | None = None
    dist: str | None = None
    problems: list[str] = field(default_factory=list)
    traceback: str | None = None
    disabled: bool = False

    @property
    def available(self) -> bool:
        """Loaded, and nothing it registered was refused."""
        return self.error is None and not self.disabled

    def add_traceback(self, text: str) -> None:
        """Keep the formatted traceback of a failure (shown by ``seqkit plugins --verbose``)."""
        self.traceback = text if not self.traceback else f"{self.traceback}\n{text}"


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

    Returns the manager and a `PluginInfo` per entry point (those that failed to import carry
    the reason and an install hint). An extra plugin whose name an entry point already uses
    replaces it, so a plugin's own tests work whether or not the plugin is installed."""
    pm = SeqkitPluginManager("seqkit")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    extra_plugins = list(extra_plugins)
    replaced = {name for name, _ in extra_plugins}
    if load_entry_points:
        wanted = os.environ.get(LOAD_ENV)
        allowed = None if wanted is None else _names(wanted)
        disabled = _names(os.environ.get(DISABLE_ENV, ""))
        seen: set[str] = set()
        dist_names: dict[int, str | None] = {}  # reading a distribution's METADATA is the slow part
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allowed is not None and ep.name not in allowed) or ep.name in seen or ep.name in replaced:
                continue
            seen.add(ep.name)
            if id(ep.dist) not in dist_names:
                dist_names[id(ep.dist)] = ep.dist.metadata["Name"] if ep.dist is not None else None
            dist = dist_names[id(ep.dist)]
            if ep.name in disabled:
                infos.append(PluginInfo(name=ep.name, origin=ep.value, dist=dist, disabled=True))
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not break the others
                infos.append(PluginInfo(
                    name=ep.name, origin=ep.value, error=f"{type(exc).__name__}: {exc}",
                    install_hint=_install_hint(ep, exc), dist=dist, traceback=traceback.format_exc()))
                continue
            infos.append(PluginInfo(name=ep.name, origin=ep.value, dist=dist))
    for name, plugin in extra_plugins:
        pm.register(plugin, name=name)
    return pm, infos


def _names(value: str) -> set[str]:
    return {n.strip() for n in value.split(",") if n.strip()}


def _who(info: PluginInfo) -> str:
    return f"plugin {info.name!r}" + (f" (distribution {info.dist!r})" if info.dist else "")


class Registry:
    """Every component the loaded plugins registered, looked up by kind and name.

    A plugin that registers badly (no name, not the interface, a taken name, an option that
    clashes) has that component refused and the reason recorded on it; the rest still work."""

    def __init__(self, pm: pluggy.PluginManager, infos: Iterable[PluginInfo] = ()) -> None:
        self.pm = pm
        self.plugins: dict[str, PluginInfo] = {}
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._options: dict[str, tuple[Option, Component]] = {}
        self.refused: dict[str, dict[str, tuple[str, str]]] = {kind: {} for kind in KINDS}
        known = {info.name: info for info in infos}
        for plugin_name, plugin in pm.list_name_plugin():
            origin = getattr(plugin, "__name__", type(plugin).__name__)
            self.plugins[plugin_name] = known.get(plugin_name) or PluginInfo(name=plugin_name, origin=origin)
        for info in known.values():
            self.plugins.setdefault(info.name, info)
        for kind, (hook_name, interface, _) in KINDS.items():
            impls = getattr(pm.hook, hook_name).get_hookimpls()
            # built-in plugins first, so a third-party name clash is charged to the third party
            impls.sort(key=lambda impl: self.plugins[impl.plugin_name].dist != "seqkit")
            for impl in impls:
                info = self.plugins[impl.plugin_name]
                info.hooks.append(hook_name)
                try:
                    impl.function(register=self._register_callback(kind, interface, info))
                except Exception as exc:
                    self._refuse(info, f"{hook_name} failed: {type(exc).__name__}: {exc}")
                    info.add_traceback(traceback.format_exc())
        self.pm = pm
        for impl in pm.hook.register_commands.get_hookimpls():  # called by the CLI, on first need
            self.plugins[impl.plugin_name].hooks.append("register_commands")
        self.presets: dict[str, Any] = {}
        for impl in pm.hook.register_presets.get_hookimpls():
            info = self.plugins[impl.plugin_name]
            info.hooks.append("register_presets")
            try:
                impl.function(register=self._preset_callback(info))
            except Exception as exc:
                self._refuse(info, f"register_presets failed: {type(exc).__name__}: {exc}")
                info.add_traceback(traceback.format_exc())

    def _preset_callback(self, info: PluginInfo):
        from seqkit.presets import Preset

        def register(preset: Any) -> None:
            if not isinstance(preset, Preset) or not preset.name:
                self._refuse(info, f"register_presets got {preset!r}, not a named seqkit.presets.Preset")
            elif preset.name in self.presets:
                self._refuse(info, f"preset {preset.name!r} is already registered by plugin "
                                   f"{self.presets[preset.name].plugin!r}")
            else:
                self.presets[preset.name] = dataclasses.replace(preset, plugin=info.name)

        return register

    @property
    def hook(self) -> Any:
        """The lifecycle hooks: ``registry.hook.seqkit_epoch_ended(run=..., row=...)`` calls every
        implementation (plugins, and the loggers registered with `watching`)."""
        return self.pm.hook

    def watching(self, observers: Iterable[Any]) -> "_Watching":
        """A context registering ``observers`` (loggers, progress adapters) for one run."""
        return _Watching(self.pm, list(observers))

    def preset(self, name: str) -> Any:
        """The preset named ``name``, or a `ConfigError` listing the valid names."""
        if name not in self.presets:
            valid = ", ".join(sorted(self.presets)) or "(none installed)"
            raise ConfigError(f"unknown preset {name!r}{nearest(name, self.presets)}; choose one of: {valid}")
        return self.presets[name]

    def _refuse(self, info: PluginInfo, problem: str) -> None:
        info.problems.append(problem)
        info.error = "; ".join(info.problems)

    def refuse(self, info: PluginInfo, problem: str, tb: str | None = None) -> None:
        """Record ``problem`` (and its traceback) against plugin ``info``; the plugin shows as refused."""
        self._refuse(info, problem)
        if tb:
            info.add_traceback(tb)

    def _register_callback(self, kind: str, interface: type, info: PluginInfo):
        def register(factory: Any, name: str | None = None) -> None:
            try:
                component = self._component(kind, interface, info, factory, name)
            except PluginError as exc:
                self._refuse(info, str(exc))
                comp_name = name or getattr(factory, "name", "")
                if isinstance(comp_name, str) and comp_name and comp_name not in self._components[kind]:
                    self.refused[kind][comp_name] = (info.name, str(exc))
                return
            self._components[kind][component.name] = component
            for opt in component.options:
                self._options.setdefault(opt.name, (opt, component))
            info.components.append(component)

        return register

    def _component(self, kind: str, interface: type, info: PluginInfo, factory: Any, name: str | None) -> Component:
        comp_name = name or getattr(factory, "name", "")
        if not comp_name or not isinstance(comp_name, str):
            raise PluginError(f"plugin {info.name!r} registered a {kind} without a name")
        if not isinstance(factory, LazyComponent) and not (
            inspect.isclass(factory) and issubclass(factory, interface)
        ):
            raise PluginError(
                f"plugin {info.name!r} registered {kind} {comp_name!r} that is not a {interface.__name__} subclass")
        if inspect.isclass(factory) and inspect.isabstract(factory):
            missing = ", ".join(sorted(factory.__abstractmethods__))
            raise PluginError(f"plugin {info.name!r} registered {kind} {comp_name!r} without {missing}(): "
                              f"implement every abstract method of {interface.__name__}")
        existing = self._components[kind].get(comp_name)
        if existing is not None:
            first = self.plugins[existing.plugin]
            builtin = " built-in" if first.dist == "seqkit" else ""
            fix = f"pip uninstall {info.dist}" if info.dist else f"remove plugin {info.name!r}"
            raise PluginError(
                f"{kind} {comp_name!r} is already registered by{builtin} {_who(first)}, which keeps it; "
                f"{_who(info)} must register it under another name: rename it there, or uninstall it ({fix}) "
                f"or switch it off ({DISABLE_ENV}={info.name})")
        try:
            options = check_options(f"{kind} {comp_name!r}", getattr(factory, "options", ()))
        except ValueError as exc:
            raise PluginError(f"plugin {info.name!r}: {exc}") from None
        for opt in options:
            self._check_option(kind, comp_name, info, opt)
        description = getattr(factory, "description", "") or (
            (inspect.getdoc(factory) or "").splitlines()[0] if inspect.isclass(factory) else "")
        return Component(kind, comp_name, info.name, factory, description, options, info.dist)

    def _check_option(self, kind: str, comp_name: str, info: PluginInfo, opt: Option) -> None:
        from seqkit.config import CORE_OPTIONS

        if opt.name in CORE_OPTIONS or opt.name in ("config", "preset", "resume", "print_config"):
            raise PluginError(f"plugin {info.name!r}: {kind} {comp_name!r} declares option {opt.name!r}, which is "
                              "one of seqkit's own; choose another name")
        earlier = self._options.get(opt.name)
        if earlier is not None and (earlier[0].type, earlier[0].multiple) != (opt.type, opt.multiple):
            other = earlier[1]
            raise PluginError(
                f"option {opt.flag} is {opt.type_name} in {kind} {comp_name!r} (plugin {info.name!r}) but "
                f"{earlier[0].type_name} in {other.kind} {other.name!r} (plugin {other.plugin!r}); components may "
                "share an option name only with the same type")

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted (available or not)."""
        return sorted(self._components[kind])

    def components(self, kind: str) -> list[Component]:
        """Registered components of one kind, sorted by name."""
        return [self._components[kind][name] for name in self.names(kind)]

    def component(self, kind: str, name: str) -> Component:
        """The component, or a `PluginError` that lists the valid names."""
        try:
            return self._components[kind][name]
        except KeyError:
            option = KINDS[kind][2]
            if name in self.refused[kind]:
                plugin, reason = self.refused[kind][name]
                raise PluginError(f"{kind} {name!r} of plugin {plugin!r} is broken and was not registered: {reason} "
                                  f"(choose another {option}, or fix or uninstall the plugin)") from None
            valid = ", ".join(self.names(kind)) or "(none installed)"
            broken = [p.name for p in self.plugins.values() if not p.available]
            extra = f" (plugins with errors: {', '.join(sorted(broken))}; see `seqkit plugins`)" if broken else ""
            raise PluginError(f"unknown {kind} {name!r} for {option}; choose one of: {valid}{extra}") from None

    def option_schema(self) -> dict[str, Option]:
        """Every component option by name (the first declaration of a shared name)."""
        return {name: opt for name, (opt, _) in self._options.items()}

    def option_users(self, name: str) -> list[tuple[str, str]]:
        """The ``(kind, component)`` pairs that declare option ``name``."""
        return [(kind, comp.name) for kind in KINDS for comp in self.components(kind)
                if any(o.name == name for o in comp.options)]

    def get(self, kind: str, name: str) -> type:
        """The component's class (imported now if lazy); errors name the valid choices or the fix."""
        return self.component(kind, name).load()

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Instantiate a component with its declared options: values from ``options`` (validated),
        defaults for the rest. A keyword the component does not declare is an error."""
        component = self.component(kind, name)
        cls = component.load()
        declared = {opt.name: opt for opt in component.options}
        unknown = sorted(set(options) - set(declared))
        if unknown:
            raise PluginError(f"{kind} {name!r} has no option {unknown[0]!r}"
                              f"{nearest(unknown[0], declared)}; its options: {', '.join(declared) or 'none'}")
        values = {n: opt.validate(options.get(n, opt.default)) for n, opt in declared.items()}
        try:
            return cls(**values)
        except TypeError as exc:
            raise PluginError(f"{kind} {name!r} of plugin {component.plugin!r} cannot be constructed with its "
                              f"declared options {sorted(values)}: {exc}") from None
        except SeqkitError:
            raise
        except Exception as exc:
            raise PluginError(f"{kind} {name!r} of plugin {component.plugin!r} failed to start: "
                              f"{type(exc).__name__}: {exc} (full traceback: {TRACEBACKS_ENV}=1)") from exc


class _Watching:
    def __init__(self, pm: pluggy.PluginManager, observers: list[Any]) -> None:
        self.pm, self.observers = pm, observers

    def __enter__(self) -> None:
        for observer in self.observers:
            self.pm.register(observer, name=f"run-observer-{id(observer)}")

    def __exit__(self, *exc: Any) -> None:
        for observer in self.observers:
            if self.pm.is_registered(observer):
                self.pm.unregister(observer)


def build_registry(
    extra_plugins: Iterable[tuple[str, object]] = (), load_entry_points: bool = True
) -> Registry:
    """A new registry from the entry points plus ``extra_plugins`` (name, module-or-object) pairs."""
    pm, infos = make_plugin_manager(extra_plugins, load_entry_points)
    return Registry(pm, infos)


def failure_report(registry: Registry) -> str:
    """Every plugin failure with its full traceback (import errors, hooks that raised) or, for a
    refused registration, its reason; empty when every plugin is well."""
    parts = []
    for info in sorted(registry.plugins.values(), key=lambda p: p.name):
        if info.error is None:
            continue
        head = f"== plugin {info.name!r} ({info.origin}" + (f", distribution {info.dist!r}" if info.dist else "") + ")"
        body = info.traceback.rstrip() if info.traceback else ""
        problems = "\n".join(f"refused: {p}" for p in info.problems) if info.problems else f"error: {info.error}"
        parts.append("\n".join(x for x in (head, problems, body) if x))
    return "\n\n".join(parts)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, built on first use (failures printed to stderr with full
    tracebacks when ``SEQKIT_PLUGIN_TRACEBACKS`` is set to a non-empty value other than 0)."""
    registry = build_registry()
    if os.environ.get(TRACEBACKS_ENV, "") not in ("", "0"):
        report = failure_report(registry)
        if report:
            print(report, file=sys.stderr)
    return registry
