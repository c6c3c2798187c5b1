"""Run lifecycle hooks, loggers selected with --logger, and the TensorBoard event files."""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import seqkit
from seqkit import Logger, hookimpl
from seqkit.cli import main
from seqkit.errors import ConfigError, DivergedError
from seqkit.logger import LIFECYCLE_HOOKS
from seqkit.plugins import build_registry
from helpers import assert_clean_error


class Recording(Logger):
    """Logs every lifecycle call it receives."""

    name = "recording"
    calls: list = []

    def seqkit_run_started(self, run, info):
        Recording.calls.append(("started", info["epochs"]))

    def seqkit_step_ended(self, run, state):
        Recording.calls.append(("step",))

    def seqkit_epoch_ended(self, run, row):
        Recording.calls.append(("epoch", row["epoch"]))

    def seqkit_sample_generated(self, run, text, epoch):
        Recording.calls.append(("sample", epoch))

    def seqkit_checkpoint_saved(self, run, folder):
        Recording.calls.append(("checkpoint", Path(folder).name))

    def seqkit_run_finished(self, run, status, error):
        Recording.calls.append(("finished", status))


def registry_with_recorder():
    Recording.calls = []
    plugin = SimpleNamespace(register_loggers=hookimpl(lambda register: register(Recording)))
    return build_registry(extra_plugins=[("recording-plugin", plugin)])


def test_a_selected_logger_sees_every_phase_in_order(corpora_dir, tiny, tmp_path):
    registry = registry_with_recorder()
    seqkit.train(**tiny, registry=registry, logger=["recording"], out=str(tmp_path / "run"), sample_every=1,
                 checkpoint_every=1, progress=False)
    calls = [c for c in Recording.calls if c != ("step",)]
    assert calls == [("started", 2), ("epoch", 1), ("sample", 1), ("checkpoint", "checkpoint"), ("epoch", 2),
                     ("checkpoint", "checkpoint"), ("sample", 2), ("finished", "completed")]
    assert Recording.calls.count(("step",)) > 2


def test_a_logger_that_is_not_selected_sees_nothing_and_is_unregistered(corpora_dir, tiny):
    registry = registry_with_recorder()
    seqkit.train(**tiny, registry=registry, progress=False)
    assert Recording.calls == []
    seqkit.train(**tiny, registry=registry, logger="recording", progress=False)
    assert ("finished", "completed") in Recording.calls
    assert not [p for name, p in registry.pm.list_name_plugin() if name.startswith("run-observer")]


def test_a_diverging_run_reports_its_end(corpora_dir, tiny):
    registry = registry_with_recorder()
    with pytest.raises(DivergedError):
        seqkit.train(**{**tiny, "lr": 1e8}, clipper="none", registry=registry, logger=["recording"],
                     progress=False)
    assert Recording.calls[-1] == ("finished", "diverged")


def test_unknown_logger_lists_the_valid_ones(corpora_dir, tiny):
    with pytest.raises(seqkit.SeqkitError, match="unknown logger 'tensorbored' for --logger; choose one of: "
                                                 "tensorboard"):
        seqkit.train(**tiny, logger=["tensorbored"], progress=False)
    with pytest.raises(ConfigError, match="--tensorboard-dir is used by logger 'tensorboard': add --logger "
                                          "tensorboard"):
        seqkit.train(**tiny, tensorboard_dir="tb", progress=False)


def test_every_lifecycle_hook_is_specified_and_documented():
    from seqkit import hookspecs

    guide = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    for name in LIFECYCLE_HOOKS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name
        assert name in guide, name


def read_events(folder: Path) -> list:
    """Every Event record of the tfevents files in ``folder`` (TFRecord framing, protobuf payload)."""
    from tensorboardX.proto import event_pb2

    events = []
    for file in sorted(folder.glob("events.out.tfevents.*")):
        data = file.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            payload = data[offset + 12: offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event()
            event.ParseFromString(payload)
            events.append(event)
    return events


def test_tensorboard_writes_scalars_and_samples_that_read_back(corpora_dir, tiny, tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4",
                                       "--num-steps", "10", "--epochs", "3", "--val-fraction", "0.1",
                                       "--sample-every", "1", "--logger", "tensorboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    events = read_events(out / "tensorboard")
    scalars: dict[str, list] = {}
    texts: list[str] = []
    for event in events:
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
            elif value.tag.startswith(("sample", "config", "status")):
                texts.append(value.tag)
    from seqkit.plot import read_metrics

    history = read_metrics(out)
    assert [step for step, _ in scalars["perplexity/train"]] == [1, 2, 3]
    assert scalars["perplexity/train"][-1][1] == pytest.approx(history[-1]["train_ppl"], rel=1e-6)
    assert scalars["perplexity/validation"][0][1] == pytest.approx(history[0]["val_ppl"], rel=1e-6)
    for tag in ("optimizer/lr", "gradients/norm", "gradients/clipped_fraction", "speed/tokens_per_s",
                "bits_per_token/validation"):
        assert len(scalars[tag]) == 3, tag
    assert any(t.startswith("sample") for t in texts) and any(t.startswith("config") for t in texts)


def test_tensorboard_without_a_folder_is_a_clear_error(corpora_dir, tiny):
    pytest.importorskip("tensorboardX")
    with pytest.raises(ConfigError, match="--logger tensorboard needs a folder"):
        seqkit.train(**tiny, logger=["tensorboard"], progress=False)


def test_the_cli_rejects_an_unknown_logger(corpora_dir, tmp_path):
    result = CliRunner().invoke(main, ["run", "--logger", "nope", "--out", str(tmp_path / "x")])
    assert_clean_error(result, "unknown logger 'nope'")


def test_the_tensorboard_logger_is_a_builtin_component():
    component = build_registry().component("logger", "tensorboard")
    assert component.plugin == "loggers" and [o.name for o in component.options] == ["tensorboard_dir"]
