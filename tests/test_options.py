"""The option schema end to end: a third-party plugin's option reaches its component from the CLI,
the API, a config file, a preset and a checkpoint; every mistake is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import seqkit
from seqkit.api import configure
from seqkit.cli import main
from seqkit.config import CORE_OPTIONS
from seqkit.errors import ConfigError
from seqkit.options import Option
from seqkit.plugins import build_registry, get_registry
from seqkit.store import CheckpointError
from helpers import add_entry_point, assert_clean_error

PLUGIN_SOURCE = '''
"""A third-party plugin: a first-k decoder with an option, and a preset that sets it."""
import numpy as np

from seqkit import Decoder, Option, hookimpl
from seqkit.decoder import softmax
from seqkit.presets import Preset

SEEN = []


class TopK(Decoder):
    """Sample among the k most likely tokens."""

    name = "first-k"
    options = (Option("first_k", int, 10, "How many of the most likely tokens to sample from.", ge=1),)

    def __init__(self, first_k=10):
        SEEN.append(first_k)
        self.first_k = first_k

    def distribution(self, logits):
        probs = softmax(logits)
        keep = np.argsort(probs)[::-1][: self.first_k]
        out = np.zeros_like(probs)
        out[keep] = probs[keep]
        return out / out.sum()


@hookimpl
def register_decoders(register):
    register(TopK)


@hookimpl
def register_presets(register):
    register(Preset("tiny-first-k", {"decoder": "first-k", "first_k": 5, "max_tokens": 2000, "hidden": 16,
                                   "batch_size": 4, "num_steps": 8, "epochs": 1, "predict_len": 5},
                    description="a tiny run sampling with first-k", source="tests", expected="anything"))
'''
TINY = ["--max-tokens", "2000", "--hidden", "16", "--batch-size", "4", "--num-steps", "8", "--epochs", "1",
        "--predict-len", "5"]


@pytest.fixture
def topk_plugin(tmp_path, monkeypatch, corpora_dir):
    """``seqkit_topk_test`` installed the way a third party is: found through the entry-point group."""
    (tmp_path / "seqkit_topk_test.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    add_entry_point(monkeypatch, "topk", "seqkit_topk_test")
    get_registry.cache_clear()
    import seqkit_topk_test

    seqkit_topk_test.SEEN.clear()
    yield seqkit_topk_test
    get_registry.cache_clear()
    sys.modules.pop("seqkit_topk_test", None)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_option_reaches_the_component_from_the_cli(topk_plugin, tmp_path):
    out = tmp_path / "cli"
    result = invoke("run", *TINY, "--decoder", "first-k", "--first-k", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert set(topk_plugin.SEEN) == {2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["first_k"] == 2 and summary["config"]["decoder"] == "first-k"
    assert summary["components"]["decoder"] == {"name": "first-k", "plugin": "topk", "distribution": None}
    header = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["header"]
    assert header["config"]["first_k"] == 2


def test_the_option_reaches_the_component_from_the_api(topk_plugin):
    run = seqkit.train(**dict(max_tokens=2000, hidden=16, batch_size=4, num_steps=8, epochs=1, predict_len=5),
                       decoder="first-k", first_k=3)
    assert run.config.first_k == 3 and set(topk_plugin.SEEN) == {3}
    topk_plugin.SEEN.clear()
    run.predict("the", decoder="first-k", first_k=1)
    assert topk_plugin.SEEN == [1]
    with pytest.raises(ConfigError, match="--first-k must be >= 1, got 0"):
        run.predict("the", first_k=0)
    with pytest.raises(ConfigError, match="--first-k is used by decoder 'first-k', not by the selected decoder 'greedy'"):
        run.predict("the", decoder="greedy", first_k=2)


def test_the_option_reaches_the_component_from_a_config_file_and_flags_override(topk_plugin, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('decoder = "first-k"\nfirst_k = 4\nhidden = 16\nmax_tokens = 2000\n')
    assert configure({}, config=config).first_k == 4
    assert configure({"first_k": 6}, config=config).first_k == 6
    result = invoke("run", "--config", config, "--epochs", "1", "--batch-size", "4", "--num-steps", "8",
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert set(topk_plugin.SEEN) == {4}


def test_the_option_reaches_the_component_from_a_plugin_preset(topk_plugin, tmp_path):
    result = invoke("run", "--preset", "tiny-first-k", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert set(topk_plugin.SEEN) == {5}
    listed = json.loads(invoke("presets", "--json").output)
    assert {"name": "tiny-first-k", "plugin": "topk"}.items() <= next(p for p in listed
                                                                    if p["name"] == "tiny-first-k").items()
    # a preset value for a component that is not selected is ignored; an explicit one is an error
    assert "first_k" not in configure({"decoder": "greedy"}, preset="tiny-first-k").to_dict()


def test_the_option_comes_back_from_the_checkpoint(topk_plugin, tmp_path):
    out = tmp_path / "run"
    assert invoke("run", *TINY, "--decoder", "first-k", "--first-k", "1", "--out", out).exit_code == 0
    topk_plugin.SEEN.clear()
    reloaded = seqkit.load(out)
    assert reloaded.config.decoder == "first-k" and reloaded.config.first_k == 1
    sampled = invoke("generate", out, "--prefix", "the", "--length", "20")
    assert sampled.exit_code == 0, sampled.output
    assert topk_plugin.SEEN and set(topk_plugin.SEEN) == {1}
    greedy = invoke("generate", out, "--prefix", "the", "--length", "20", "--decoder", "greedy")
    assert sampled.output == greedy.output  # top-1 is greedy
    assert invoke("generate", out, "--first-k", "3", "--seed", "1").exit_code == 0
    assert set(topk_plugin.SEEN) == {1, 3}
    assert "--first-k" in invoke("generate", "--help").output


def test_run_help_lists_component_options_grouped(topk_plugin):
    result = invoke("run", "--help")
    assert result.exit_code == 0
    text = result.output
    assert "decoder first-k (plugin topk)" in text and "--first-k INTEGER" in text
    assert "clipper norm (plugin clippers)" in text and "--clip-theta NUMBER" in text
    assert "How many of the most likely tokens" in text and "default: 10" in text


def test_run_takes_every_option_of_every_installed_component():
    from seqkit.plugins import KINDS

    registry = get_registry()
    command = main.commands["run"]
    assert set(command.kinds) == set(KINDS)
    text = invoke("run", "--help").output
    for name, opt in {**CORE_OPTIONS, **registry.option_schema()}.items():
        assert opt.flag in text, name


def test_help_imports_no_framework():
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        from seqkit.cli import main
        for args in (["--help"], ["run", "--help"], ["generate", "--help"], ["evaluate", "--help"]):
            assert CliRunner().invoke(main, args).exit_code == 0
        loaded = sorted({"torch", "mxnet", "numpy", "autograd"} & set(sys.modules))
        assert not loaded, loaded  # --help stays fast: no framework, not even numpy, is imported
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("args, fragments", [
    (["--first-kk", "3"], ["No such option '--first-kk'", "'--first-k'"]),
    (["--temperature", "0.5"], ["--temperature is used by decoder 'temperature', not by the selected decoder "
                                "'greedy': add --decoder temperature or leave --temperature out"]),
    (["--clipper", "none", "--clip-theta", "2"], ["--clip-theta is used by clipper 'norm'"]),
    (["--decoder", "first-k", "--first-k", "0"], ["--first-k must be >= 1, got 0"]),
    (["--decoder", "topk"], ["unknown decoder 'topk'", "choose one of: alpha, beam, first-k, greedy, temperature, "
                             "top-k, top-p"]),
    (["--preset", "d2l-2018"], ["unknown preset 'd2l-2018' (did you mean 'd2l-2019'?)"]),
    (["--lr", "nan"], ["--lr must be > 0, got nan"]),
])
def test_option_mistakes_are_one_line_errors(topk_plugin, args, fragments, tmp_path):
    result = invoke("run", *args, "--out", tmp_path / "run")
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_api_typo_names_the_nearest_option():
    with pytest.raises(ConfigError, match=r"unknown option 'temprature' \(did you mean 'temperature'\?\)"):
        seqkit.train(temprature=0.5)


def test_config_file_mistakes(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("hiden = 4\n")
    assert_clean_error(invoke("run", "--config", config), "unknown key 'hiden' (did you mean 'hidden'?)")
    config.write_text("hidden = \n")
    assert_clean_error(invoke("run", "--config", config), "is not valid TOML")
    config.write_text('hidden = "big"\n')
    assert_clean_error(invoke("run", "--config", config), "--hidden must be an integer >= 1, got 'big'")
    config.write_text("[training]\nhidden = 4\n")
    assert_clean_error(invoke("run", "--config", config), "[training] is a table")
    assert_clean_error(invoke("run", "--config", tmp_path / "none.toml"), "does not exist")
    # a value in a config file for a component that is not selected is ignored
    config.write_text("temperature = 0.5\n")
    assert "temperature" not in configure({}, config=config).to_dict()


def test_print_config_round_trips(topk_plugin, tmp_path):
    first = invoke("run", "--print-config", "--decoder", "first-k", "--first-k", "3", "--hidden", "64",
                   "--prefix", "the", "--prefix", "time", "--corpus-file", str(tmp_path / "x.txt"))
    assert first.exit_code == 0, first.output
    assert "first_k = 3" in first.output and "# decoder 'first-k'" in first.output
    saved = tmp_path / "resolved.toml"
    saved.write_text(first.output)
    second = invoke("run", "--config", saved, "--print-config")
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    assert configure({}, config=saved).to_dict() == configure(
        {"decoder": "first-k", "first_k": 3, "hidden": 64, "prefix": ["the", "time"],
         "corpus_file": str(tmp_path / "x.txt")}).to_dict()


def test_an_option_type_clash_is_refused_naming_both_plugins():
    from types import SimpleNamespace

    from seqkit import Clipper, hookimpl

    class Elementwise(Clipper):
        name = "elementwise"
        options = (Option("clip_theta", str, "1", "A clash: the norm clipper's clip_theta is a number."),)

        def clip(self, backend, grads):
            return grads, 0.0, False

    class Reusing(Elementwise):
        name = "reusing"
        options = (Option("clip_theta", float, 0.5, "Same name, same type: allowed."),)

        def __init__(self, clip_theta: float = 0.5) -> None:
            self.theta = clip_theta

    plugin = SimpleNamespace(register_clippers=hookimpl(lambda register: [register(Elementwise), register(Reusing)]))
    registry = build_registry(extra_plugins=[("clash", plugin)])
    error = registry.plugins["clash"].error
    assert "option --clip-theta is text in clipper 'elementwise' (plugin 'clash') but number in clipper 'norm' " \
           "(plugin 'clippers')" in error
    assert "reusing" in registry.names("clipper") and "elementwise" not in registry.names("clipper")
    config = configure({"clipper": "reusing"}, registry=registry)
    assert config.clip_theta == 0.5
    assert registry.create("clipper", "reusing", **config.component_options("clipper")).theta == 0.5


def test_a_component_option_may_not_shadow_a_core_option():
    from types import SimpleNamespace

    from seqkit import hookimpl
    from seqkit_decoders.sampling import GreedyDecoder

    class Shadow(GreedyDecoder):
        name = "shadow"
        options = (Option("lr", float, 1.0, "clashes with the engine's --lr"),)

    plugin = SimpleNamespace(register_decoders=hookimpl(lambda register: register(Shadow)))
    registry = build_registry(extra_plugins=[("shadow", plugin)])
    assert "declares option 'lr', which is one of seqkit's own" in registry.plugins["shadow"].error


def test_a_checkpoint_needing_a_missing_plugin_names_it(topk_plugin, tmp_path):
    out = tmp_path / "run"
    assert invoke("run", *TINY, "--decoder", "first-k", "--out", out).exit_code == 0
    registry = build_registry(extra_plugins=[("topk", object())])  # the plugin is gone
    with pytest.raises(CheckpointError, match="this checkpoint needs decoder 'first-k' from plugin 'topk', which is "
                                              "not installed here"):
        seqkit.load(out, registry=registry)
    assert seqkit.load(out, registry=registry, decoder="greedy").predict("the", length=3)
    with pytest.raises(CheckpointError, match="cannot resume .*decoder 'first-k' from plugin 'topk'"):
        seqkit.train(resume=out, epochs=2, registry=registry)


@pytest.mark.parametrize("name", sorted(get_registry().presets))
def test_each_preset_resolves_and_trains_on_numpy(name, corpora_dir, tmp_path):
    registry = get_registry()
    preset = registry.preset(name)
    assert preset.description and preset.source and preset.expected
    config = configure({}, preset=name)
    if "lr_decay" not in preset.values:  # a preset is the whole recipe: no corpus recommendation leaks in
        assert config.get("lr_decay", 1.0) == 1.0 and config.epochs == preset.values["epochs"]
    for key, value in preset.values.items():
        assert config[key] == (value if key not in ("prefix",) else list(value)), key
    small = {"batch_size": min(config.batch_size, 16), "hidden": min(config.hidden, 256), "backend": "numpy"}
    run = seqkit.train(preset=name, epochs=1, max_tokens=3000, checkpoint_every=0, predict_len=10, **small)
    assert len(run.history) == 1 and run.history[0]["train_ppl"] < len(run.vocab)
    assert all(run.predict(p).startswith(p) for p in run.prefixes)


def test_presets_command_lists_the_lessons():
    rows = {row["name"]: row for row in json.loads(invoke("presets", "--json").output)}
    assert {"d2l-2019", "d2l", "d2l-concise", "straight-dope", "jaychou"} <= set(rows)
    assert rows["d2l"]["options"]["max_tokens"] == 10000 and "1.0" in rows["d2l"]["expected"]
    table = invoke("presets")
    assert table.exit_code == 0 and "straight-dope" in table.output


def test_every_core_option_is_declared_once_with_help():
    assert all(opt.help for opt in CORE_OPTIONS.values())
    schema = get_registry().option_schema()
    assert not set(schema) & set(CORE_OPTIONS)
