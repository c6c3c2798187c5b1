"""Plugin manager: entry points, duplicate names, broken plugins isolated, lazy components, docs."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from seqkit import Cell, LazyComponent, ParamSpec, hookimpl, hookspecs
from seqkit.cli import main
from seqkit.errors import PluginError, UnavailableError
from seqkit.plugins import ENTRY_POINT_GROUP, KINDS, build_registry
from helpers import add_entry_point

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = {"numpy", "torch", "mxnet", "corpora", "samplers", "cells", "clippers", "decoders", "optimizers",
            "presets", "loggers", "schedules"}
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


class EchoCell(Cell):
    """A test cell: the hidden state is the projected input."""

    name = "rnn-tanh"

    def param_specs(self, input_size, hidden_size):
        return {"W_xh": ParamSpec((input_size, hidden_size))}

    def step(self, ops, params, x, state):
        h = ops.matmul(x, params["W_xh"])
        return h, (h,)


def test_builtins_are_registered_through_the_entry_point_group():
    names = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert BUILTINS <= names
    registry = build_registry()
    assert BUILTINS <= set(registry.plugins)

    def builtin(kind):  # a third-party plugin installed beside (say, examples/seqkit-gru) is not counted
        return [c.name for c in registry.components(kind) if c.plugin in BUILTINS]

    assert builtin("cell") == ["rnn-relu", "rnn-tanh"]
    assert builtin("sampler") == ["random", "sequential"]
    assert builtin("clipper") == ["none", "norm"]
    assert builtin("decoder") == ["alpha", "beam", "greedy", "temperature", "top-k", "top-p"]
    assert builtin("optimizer") == ["adam", "adamw", "sgd"]
    assert {"numpy", "torch", "mxnet"} <= set(registry.names("backend"))
    assert registry.component("cell", "rnn-tanh").plugin == "cells"


def test_unknown_name_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("SEQKIT_LOAD_PLUGINS", "cells")  # the built-in cells only, whatever else is installed
    registry = build_registry()
    with pytest.raises(PluginError, match=r"unknown cell 'gru' for --cell; choose one of: rnn-relu, rnn-tanh"):
        registry.get("cell", "gru")


def test_a_duplicate_name_is_refused_and_charged_to_the_third_party():
    plugin = SimpleNamespace(register_cells=hookimpl(lambda register: register(EchoCell)))
    registry = build_registry(extra_plugins=[("echo", plugin)])
    assert registry.component("cell", "rnn-tanh").plugin == "cells"  # the built-in keeps its name
    echo = registry.plugins["echo"]
    assert not echo.available
    assert "cell 'rnn-tanh' is already registered by built-in plugin 'cells' (distribution 'seqkit'), which keeps it; plugin 'echo' must register it under another name" in echo.error
    table = CliRunner().invoke(main, ["plugins"])
    assert table.exit_code == 0


def test_a_third_party_cell_is_found_and_created():
    class LeakyCell(EchoCell):
        """Leaky test cell."""
        name = "leaky"

    plugin = SimpleNamespace(register_cells=hookimpl(lambda register: register(LeakyCell)))
    registry = build_registry(extra_plugins=[("leaky-plugin", plugin)])
    assert isinstance(registry.create("cell", "leaky"), LeakyCell)
    with pytest.raises(PluginError, match="cell 'leaky' has no option 'unused_option'; its options: none"):
        registry.create("cell", "leaky", unused_option=1)
    assert registry.plugins["leaky-plugin"].hooks == ["register_cells"]


def test_non_interface_registration_is_refused_and_recorded():
    plugin = SimpleNamespace(register_cells=hookimpl(lambda register: register(dict, name="bad")))
    registry = build_registry(extra_plugins=[("bad", plugin)])
    assert "not a Cell subclass" in registry.plugins["bad"].error
    assert "bad" not in registry.names("cell") and "rnn-tanh" in registry.names("cell")


def test_a_cell_without_step_is_refused():
    class Forgetful(Cell):
        name = "forgetful"

        def param_specs(self, input_size, hidden_size):
            return {}

    plugin = SimpleNamespace(register_cells=hookimpl(lambda register: register(Forgetful)))
    registry = build_registry(extra_plugins=[("forgetful", plugin)])
    assert "without step()" in registry.plugins["forgetful"].error
    with pytest.raises(PluginError, match="cell 'forgetful' of plugin 'forgetful' is broken and was not registered: "
                                          ".*without step\\(\\)"):
        registry.get("cell", "forgetful")


def test_a_registration_hook_that_raises_is_isolated():
    def explode(register):
        raise RuntimeError("boom")

    plugin = SimpleNamespace(register_cells=hookimpl(explode))
    registry = build_registry(extra_plugins=[("explodes", plugin)])
    assert "register_cells failed: RuntimeError: boom" in registry.plugins["explodes"].error
    assert "rnn-tanh" in registry.names("cell")


def test_an_extra_plugin_replaces_the_installed_one_of_the_same_name(monkeypatch):
    monkeypatch.setenv("SEQKIT_LOAD_PLUGINS", "cells")
    plugin = SimpleNamespace(register_cells=hookimpl(lambda register: None))
    registry = build_registry(extra_plugins=[("cells", plugin)])
    assert registry.names("cell") == []


def test_a_plugin_that_fails_to_import_is_isolated(monkeypatch):
    add_entry_point(monkeypatch, "broken", "seqkit_no_such_module_xyz")
    registry = build_registry()
    broken = registry.plugins["broken"]
    assert not broken.available
    assert "ModuleNotFoundError" in broken.error
    assert broken.install_hint == "pip install seqkit_no_such_module_xyz"
    assert registry.get("cell", "rnn-tanh").name == "rnn-tanh"  # the others keep working
    with pytest.raises(PluginError, match="plugins with errors: broken"):
        registry.get("cell", "missing")


def test_lazy_component_with_missing_module_is_unavailable_with_hint():
    lazy = LazyComponent("ghost", "seqkit_ghost.backend:Ghost", requires=("seqkit_ghost_framework",),
                         install_hint="pip install 'seqkit[ghost]'")
    plugin = SimpleNamespace(register_backends=hookimpl(lambda register: register(lazy)))
    registry = build_registry(extra_plugins=[("ghost", plugin)])
    component = registry.component("backend", "ghost")
    assert "pip install 'seqkit[ghost]'" in component.unavailable_reason
    with pytest.raises(UnavailableError, match=r"backend 'ghost' is unavailable: .*pip install 'seqkit\[ghost\]'"):
        registry.get("backend", "ghost")


def test_load_plugins_env_restricts_entry_points(monkeypatch):
    monkeypatch.setenv("SEQKIT_LOAD_PLUGINS", "cells,numpy")
    registry = build_registry()
    assert set(registry.plugins) == {"cells", "numpy"}
    assert registry.names("sampler") == []


def test_plugins_command_lists_components_and_availability():
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert BUILTINS <= set(rows)
    cells = rows["cells"]
    assert cells["hooks"] == ["register_cells"]
    assert {c["name"] for c in cells["components"]} == {"rnn-tanh", "rnn-relu"}
    assert all(c["available"] for c in cells["components"])
    table = CliRunner().invoke(main, ["plugins"])
    assert table.exit_code == 0 and "rnn-tanh" in table.output


def test_every_hook_has_a_docstring_and_a_kind():
    assert sorted(HOOKS) == sorted([hook for hook, _, _ in KINDS.values()] + ["register_presets", "register_commands"])
    for name in HOOKS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_every_hook_is_documented_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name in HOOKS:
        assert re.search(rf"\b{name}\b", guide), f"{name} is not documented in docs/plugins.md"


def test_every_hook_is_implemented_by_a_builtin_and_exercised_by_a_test():
    registry = build_registry()
    implemented = {hook for info in registry.plugins.values() for hook in info.hooks}
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    for hook in set(HOOKS) - implemented:  # no built-in needs it: a test must implement it
        assert f"def {hook}(" in tests, f"{hook} is neither implemented by a built-in plugin nor by a test"
    for kind in KINDS:
        assert f'"{kind}"' in tests, f"no test looks up a {kind}"


COMMANDS_PLUGIN = '''
import click
from seqkit import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("text")
    @click.option("--upper", is_flag=True, help="Shout.")
    def echo(text, upper):
        """Print TEXT back (a plugin command)."""
        click.echo(text.upper() if upper else text)

    @cli.command(name="run")
    def shadow_run():
        """Tries to replace seqkit run."""
'''

RAISING_COMMANDS = '''
from seqkit import hookimpl


@hookimpl
def register_commands(cli):
    raise RuntimeError("no commands today")
'''


@pytest.fixture
def command_plugins(tmp_path, monkeypatch):
    """Two installed plugins implementing ``register_commands``: one adds ``echo`` (and tries ``run``),
    one raises."""
    from seqkit.plugins import get_registry

    (tmp_path / "seqkit_echo_cmd.py").write_text(COMMANDS_PLUGIN)
    (tmp_path / "seqkit_raising_cmd.py").write_text(RAISING_COMMANDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        eps = list(real(**kwargs))
        if kwargs.get("group") == ENTRY_POINT_GROUP:
            eps += [importlib.metadata.EntryPoint("echo-cmd", "seqkit_echo_cmd", ENTRY_POINT_GROUP),
                    importlib.metadata.EntryPoint("raising-cmd", "seqkit_raising_cmd", ENTRY_POINT_GROUP)]
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    get_registry.cache_clear()
    yield get_registry
    get_registry.cache_clear()


def test_a_plugin_adds_a_command(command_plugins):
    result = CliRunner().invoke(main, ["echo", "hello", "--upper"])
    assert result.exit_code == 0 and result.output == "HELLO\n"
    listing = CliRunner().invoke(main, ["--help"])
    assert "echo" in listing.output and "Print TEXT back (a plugin command)." in listing.output
    assert "Shout." in CliRunner().invoke(main, ["echo", "--help"]).output


def test_a_command_hook_that_raises_or_clashes_is_refused_and_the_rest_work(command_plugins):
    listed = {row["name"]: row for row in json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)}
    assert "register_commands failed: RuntimeError: no commands today" in listed["raising-cmd"]["error"]
    assert listed["echo-cmd"]["hooks"] == ["register_commands"]
    registry = command_plugins()
    assert "register_commands failed: RuntimeError: no commands today" in registry.plugins["raising-cmd"].error
    assert "command 'run' is already provided by seqkit itself" in registry.plugins["echo-cmd"].error
    assert registry.plugins["echo-cmd"].hooks == ["register_commands"]
    run_help = CliRunner().invoke(main, ["run", "--help"])
    assert run_help.exit_code == 0 and "Train a model" in run_help.output  # the built-in run is untouched
    assert CliRunner().invoke(main, ["echo", "still"]).output == "still\n"
    unknown = CliRunner().invoke(main, ["ech"])
    assert unknown.exit_code == 2 and "No such command 'ech'" in unknown.output


def test_a_warning_during_a_command_is_one_line_on_stderr(monkeypatch):
    import warnings

    import click

    @click.command("warn-once")
    def warn_once():
        warnings.warn("--cuda-graphs: capture failed; training goes on without CUDA graphs", RuntimeWarning)
        click.echo("done")

    monkeypatch.setitem(main.commands, "warn-once", warn_once)
    original = warnings.showwarning
    result = CliRunner().invoke(main, ["warn-once"])
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert result.stderr == "Warning: --cuda-graphs: capture failed; training goes on without CUDA graphs\n"
    assert warnings.showwarning is original  # only while the command runs
