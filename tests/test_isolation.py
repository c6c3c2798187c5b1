"""Isolation per plugin, as installed third-party distributions see it: every kind of broken plugin is
listed with its reason (full traceback on request), can be switched off, and breaks nothing else;
selecting its component is a one-line error."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from seqkit.cli import main
from seqkit.errors import PluginError
from seqkit.plugins import build_registry, get_registry
from helpers import assert_clean_error

PACKAGES = {
    # a duplicate of a built-in name, a cell without step(), a nameless decoder, and one good clipper
    "seqkit_dup": '''
        import numpy as np
        from seqkit import Cell, Clipper, Decoder, ParamSpec, hookimpl
        from seqkit_cells.rnn import RNNTanh

        class Shadow(RNNTanh):
            name = "rnn-tanh"

        class Forgetful(Cell):
            name = "forgetful"
            def param_specs(self, input_size, hidden_size):
                return {}

        class Nameless(Decoder):
            def distribution(self, logits):
                return np.ones(len(logits)) / len(logits)

        class Halve(Clipper):
            name = "halve"
            def clip(self, backend, grads):
                return backend.scale(grads, 0.5), backend.global_norm(grads), True

        @hookimpl
        def register_cells(register):
            register(Shadow)
            register(Forgetful)

        @hookimpl
        def register_decoders(register):
            register(Nameless)

        @hookimpl
        def register_clippers(register):
            register(Halve)
    ''',
    "seqkit_needs_framework": '''
        import seqkit_some_missing_framework
    ''',
    "seqkit_hook_raises": '''
        from seqkit import hookimpl

        def _load_table():
            raise RuntimeError("corpus table is corrupt")

        @hookimpl
        def register_corpora(register):
            _load_table()
    ''',
    "seqkit_bad_start": '''
        from seqkit import Sampler, hookimpl
        from seqkit_samplers.partition import RandomSampler

        class Grumpy(RandomSampler):
            name = "grumpy"
            def __init__(self, random_offset=True):
                raise RuntimeError("cannot open the sampler's cache")

        @hookimpl
        def register_samplers(register):
            register(Grumpy)
    ''',
}
DISTS = {"seqkit_dup": ("dup", "seqkit-dup"), "seqkit_needs_framework": ("needs-framework", "seqkit-needs-framework"),
         "seqkit_hook_raises": ("hook-raises", "seqkit-hook-raises"), "seqkit_bad_start": ("bad-start", "seqkit-bad-start")}
TINY = ["--max-tokens", "1500", "--hidden", "8", "--batch-size", "4", "--num-steps", "8", "--epochs", "1",
        "--predict-len", "5"]


@pytest.fixture
def installed(tmp_path, monkeypatch, corpora_dir):
    """The four packages installed as distributions (dist-info with entry points) on sys.path."""
    for module, source in PACKAGES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        ep_name, dist = DISTS[module]
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[seqkit]\n{ep_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()
    for module in PACKAGES:
        sys.modules.pop(module, None)


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_every_broken_plugin_is_listed_with_its_reason(installed):
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    dup = rows["dup"]
    assert not dup["available"] and len(dup["refused"]) == 3
    assert {c["name"] for c in dup["components"]} == {"halve"}  # its good component still works
    assert "registered a decoder without a name" in dup["error"]
    assert "without step()" in dup["error"]
    assert "needs-framework" in rows and "ModuleNotFoundError" in rows["needs-framework"]["error"]
    assert rows["needs-framework"]["install_hint"] == "pip install seqkit_some_missing_framework"
    assert "register_corpora failed: RuntimeError: corpus table is corrupt" in rows["hook-raises"]["error"]
    table = invoke("plugins")
    assert table.exit_code == 0 and "refused" in table.output and "failed to load" in table.output


def test_a_duplicate_of_a_builtin_keeps_the_builtin_and_names_the_distribution(installed):
    registry = get_registry()
    assert registry.component("cell", "rnn-tanh").plugin == "cells"
    error = registry.plugins["dup"].error
    assert ("cell 'rnn-tanh' is already registered by built-in plugin 'cells' (distribution 'seqkit'), which keeps "
            "it; plugin 'dup' (distribution 'seqkit-dup') must register it under another name: rename it there, or "
            "uninstall it (pip uninstall seqkit-dup) or switch it off (SEQKIT_DISABLE_PLUGINS=dup)") in error


def test_full_tracebacks_with_verbose_or_the_environment_variable(installed):
    result = invoke("plugins", "--verbose")
    assert result.exit_code == 0
    assert "== plugin 'needs-framework'" in result.output and "Traceback (most recent call last)" in result.output
    assert "import seqkit_some_missing_framework" in result.output  # the failing line of the plugin itself
    assert 'in _load_table\n    raise RuntimeError("corpus table is corrupt")' in result.output
    assert "refused: plugin 'dup' registered cell 'forgetful' without step()" in result.output
    get_registry.cache_clear()
    quiet = invoke("plugins")
    assert "Traceback" not in quiet.output
    get_registry.cache_clear()
    env = invoke("plugins", env={"SEQKIT_PLUGIN_TRACEBACKS": "1"})
    assert env.exit_code == 0 and "Traceback (most recent call last)" in env.stderr


def test_verbose_says_when_nothing_failed():
    get_registry.cache_clear()
    result = invoke("plugins", "--verbose", env={"SEQKIT_LOAD_PLUGINS": "cells,numpy"})
    get_registry.cache_clear()
    assert result.exit_code == 0 and "No plugin failures." in result.output


def test_other_commands_keep_working(installed, tmp_path):
    result = invoke("run", *TINY, "--clipper", "halve", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    generated = invoke("generate", tmp_path / "run", "--length", "5")
    assert generated.exit_code == 0, generated.output


@pytest.mark.parametrize("args, fragments", [
    (["--cell", "forgetful"], ["cell 'forgetful' of plugin 'dup' is broken and was not registered",
                               "without step()", "choose another --cell"]),
    (["--sampler", "grumpy"], ["sampler 'grumpy' of plugin 'bad-start' failed to start: RuntimeError: cannot open "
                               "the sampler's cache", "SEQKIT_PLUGIN_TRACEBACKS=1"]),
    (["--corpus", "gutenberg"], ["unknown corpus 'gutenberg'", "plugins with errors: dup, hook-raises, "
                                 "needs-framework"]),
])
def test_selecting_a_broken_component_is_one_line(installed, tmp_path, args, fragments):
    assert_clean_error(invoke("run", *TINY, *args, "--out", tmp_path / "run"), *fragments)


def test_switching_plugins_off_by_name(installed, monkeypatch):
    monkeypatch.setenv("SEQKIT_DISABLE_PLUGINS", "dup, needs-framework,hook-raises,mxnet")
    monkeypatch.setenv("COLUMNS", "200")  # the table's phrases on one line, whatever the other rows hold
    registry = build_registry()
    for name in ("dup", "needs-framework", "hook-raises", "mxnet"):
        info = registry.plugins[name]
        assert info.disabled and not info.available and info.error is None and not info.components
    assert "mxnet" not in registry.names("backend") and "torch" in registry.names("backend")
    assert "halve" not in registry.names("clipper")
    get_registry.cache_clear()
    result = invoke("plugins")
    assert result.exit_code == 0 and "disabled" in result.output and "switched off by" in result.output
    assert "refused" not in result.output  # bad-start only registers a class; its failure comes on use
    assert "failed to load" not in result.output


def test_a_lazy_component_whose_import_fails_is_one_line(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from seqkit import LazyComponent, hookimpl

    (tmp_path / "seqkit_lazy_broken.py").write_text("raise ImportError('libfoo.so: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lazy = LazyComponent("foo", "seqkit_lazy_broken:Foo", requires=("seqkit_lazy_broken",))
    plugin = SimpleNamespace(register_backends=hookimpl(lambda register: register(lazy)))
    registry = build_registry(extra_plugins=[("foo", plugin)])
    with pytest.raises(PluginError, match=r"backend 'foo' of plugin 'foo' failed to import 'seqkit_lazy_broken:Foo': "
                                          r"ImportError: libfoo.so"):
        registry.get("backend", "foo")
