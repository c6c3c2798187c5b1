"""Portable checkpoints: format, atomic writes, exact resume, load/generate/evaluate anywhere, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqkit.plot import read_metrics
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

import seqkit
from seqkit import store as ckpt_module
from seqkit.checkpoint import generator_from_state, read_checkpoint
from seqkit.cli import StopSignals, main
from seqkit.errors import TrainingInterrupted
from seqkit.store import FORMAT, FORMAT_VERSION, CheckpointError
from seqkit.errors import DataError, SeqkitError
from seqkit.plugins import get_registry
from helpers import assert_clean_error

SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
TIMING = ("tokens_per_s", "elapsed_s")
TINY = dict(corpus="timemachine", max_tokens=2000, hidden=16, batch_size=4, num_steps=10, epochs=4, seed=0,
            predict_len=12)
TINY_CLI = ["--max-tokens", "2000", "--hidden", "16", "--batch-size", "4", "--num-steps", "10", "--predict-len", "12"]


def strip(rows: list[dict]) -> list[dict]:
    """Metrics rows without the timing fields."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


#: every registered backend but MXNet, which this module only ever runs in a subprocess (its OpenMP
#: runtime slows torch in the same process): see `test_mxnet_resume_matches_in_its_own_process`
IN_PROCESS_BACKENDS = [name for name in get_registry().names("backend") if name != "mxnet"]


def need_backend(name: str) -> None:
    """Skip unless backend ``name`` is registered and its framework installed (checked without
    importing it: MXNet is only ever imported in a subprocess here)."""
    try:
        reason = get_registry().component("backend", name).unavailable_reason
    except SeqkitError as exc:
        reason = str(exc)
    if reason:
        pytest.skip(f"backend {name} not available: {reason}")


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def data(corpora_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return corpora_dir


@pytest.fixture
def trained(data, tmp_path):
    """A finished 2-epoch run with its output folder."""
    out = tmp_path / "run"
    run = seqkit.train(**{**TINY, "epochs": 2}, out=str(out))
    return run, out


# -- format -------------------------------------------------------------------------------------
def test_checkpoint_holds_named_arrays_and_the_whole_state(trained):
    run, out = trained
    folder = out / "checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "state.json"]
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint")]
    arrays = load_file(folder / "model.safetensors")
    assert sorted(arrays) == sorted(run.params) and all(a.dtype == np.float32 for a in arrays.values())
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, run.params[name])
    state = json.loads((folder / "state.json").read_text())
    assert state["format"] == FORMAT and state["format_version"] == FORMAT_VERSION
    assert state["vocab"] == run.vocab.idx_to_token and state["config"] == run.config.to_dict()
    assert state["training"]["epoch"] == 2 and state["training"]["position"] == 0 and state["training"]["complete"]
    assert state["training"]["lr"]["next_epoch"] == 3 and state["training"]["lr"]["schedule"] == "step"
    assert set(state["rng"]) == {"init", "sampler", "decoder"}
    assert all(s["bit_generator"] == "PCG64" for s in state["rng"].values())
    assert state["metrics"] == json.loads(json.dumps(run.history))
    assert state["data"]["train_tokens"] == 2000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"] == str(folder)


@pytest.mark.parametrize("module", ["store", "checkpoint", "resume"])
def test_nothing_is_pickled(module):
    source = (Path(ckpt_module.__file__).parent / f"{module}.py").read_text()
    for risky in ("import pickle", "pickle.load", "np.load(", "allow_pickle", "torch.load", "eval(", "exec("):
        assert risky not in source, risky


def test_generator_states_are_validated_not_executed():
    state = np.random.default_rng(3).bit_generator.state
    assert generator_from_state(state).random() == np.random.default_rng(3).random()
    with pytest.raises(ValueError, match="unknown bit generator"):
        generator_from_state({**state, "bit_generator": "__import__"})


# -- load, predict, evaluate, save --------------------------------------------------------------
def test_load_predicts_and_evaluates_like_the_trained_run(trained):
    run, out = trained
    for path in (out, out / "checkpoint", out / "checkpoint" / "state.json"):
        model = seqkit.load(path)
        assert model.predict("time traveller", length=30) == run.predict("time traveller", length=30)
    assert model.predict(length=20, decoder="temperature") == run.predict(length=20, decoder="temperature")
    assert model.predict(decoder="alpha", alpha=2.0, seed=4) == run.predict(decoder="alpha", alpha=2.0, seed=4)
    text = "the time traveller smiled"
    assert model.evaluate(text)["ppl"] == pytest.approx(run.evaluate(text)["ppl"], rel=1e-6)
    assert model.history == json.loads(json.dumps(run.history))


def test_run_save_anywhere_and_load_back(data, tmp_path):
    run = seqkit.train(**{**TINY, "epochs": 1})
    folder = run.save(tmp_path / "model")
    assert folder == tmp_path / "model" / "checkpoint"
    assert run.save(folder) == folder  # a checkpoint folder is overwritten in place
    model = seqkit.load(folder)
    assert model.predict(length=25) == run.predict(length=25)
    resumed = seqkit.train(resume=tmp_path / "model", epochs=2)
    assert strip(resumed.history) == strip(seqkit.train(**{**TINY, "epochs": 2}).history)


# -- resume equality ----------------------------------------------------------------------------
def stop_after(steps: int, signum: int = signal.SIGTERM):
    calls = [0]

    def should_stop():
        calls[0] += 1
        return signum if calls[0] >= steps else None

    return should_stop


@pytest.mark.parametrize("backend", IN_PROCESS_BACKENDS)
@pytest.mark.parametrize("extra", [{}, {"sampler": "random"}, {"impl": "scratch", "val_fraction": 0.1},
                                   {"optimizer": "adam", "lr": 0.01}])
def test_resume_after_a_mid_epoch_stop_matches_an_uninterrupted_run(data, tmp_path, backend, extra):
    need_backend(backend)
    options = {**TINY, "backend": backend, "lr_decay": 0.5, "lr_decay_every": 2, **extra}
    baseline = seqkit.train(**options)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as caught:
        seqkit.train(**options, out=str(out), should_stop=stop_after(70))  # in epoch 2
    assert caught.value.signum == signal.SIGTERM and caught.value.checkpoint == out / "checkpoint"
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["training"]["epoch"] == 1 and state["training"]["position"] > 0
    assert bool(state["training"]["carried_state"]) == (options.get("sampler", "sequential") == "sequential")
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    resumed = seqkit.train(resume=out)
    assert strip(resumed.history) == strip(baseline.history)
    rows = read_metrics(out)
    assert strip(rows) == strip(json.loads(json.dumps(baseline.history)))
    assert resumed.predict(length=30) == baseline.predict(length=30)


MXNET_RESUME = """
import json, signal, sys
import seqkit
from seqkit.errors import TrainingInterrupted

runs = []
for options, out in zip(json.loads(sys.argv[1]), sys.argv[2:]):
    baseline = seqkit.train(**options)
    calls = [0]

    def should_stop():
        calls[0] += 1
        return signal.SIGTERM if calls[0] >= 70 else None

    try:
        seqkit.train(**options, out=out, should_stop=should_stop)
    except TrainingInterrupted:
        pass
    else:
        sys.exit("the run was not interrupted")
    resumed = seqkit.train(resume=out)
    runs.append({"baseline": baseline.history, "resumed": resumed.history,
                 "texts": [baseline.predict(length=30), resumed.predict(length=30)]})
print(json.dumps(runs))
"""


def test_mxnet_resume_matches_in_its_own_process(data, tmp_path):
    """`test_resume_after_a_mid_epoch_stop_matches_an_uninterrupted_run` for MXNet, fused and scratch."""
    need_backend("mxnet")
    options = [{**TINY, "backend": "mxnet", "lr_decay": 0.5, "lr_decay_every": 2, **extra}
               for extra in ({}, {"impl": "scratch", "optimizer": "adam", "lr": 0.01})]
    outs = [str(tmp_path / f"run{i}") for i in range(len(options))]
    env = {**os.environ, "SEQKIT_DATA": str(SHARED_CORPORA)}
    done = subprocess.run([sys.executable, "-c", MXNET_RESUME, json.dumps(options), *outs],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(runs) == len(options)
    for run in runs:
        assert len(run["baseline"]) == TINY["epochs"]
        assert strip(run["resumed"]) == strip(run["baseline"])
        assert run["texts"][0] == run["texts"][1]


@pytest.mark.parametrize("backend", IN_PROCESS_BACKENDS)
def test_resume_after_ctrl_c_at_an_epoch_end_matches(data, tmp_path, backend):
    need_backend(backend)
    options = {**TINY, "backend": backend}
    baseline = seqkit.train(**options)

    def progress(event, payload):
        if event == "epoch" and payload["epoch"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="stopped after epoch 2") as caught:
        seqkit.train(**options, out=str(out), progress=progress)
    assert caught.value.signum == signal.SIGINT and len(caught.value.run.history) == 2
    assert strip(seqkit.train(resume=out).history) == strip(baseline.history)


def test_an_interrupted_run_without_output_folder_can_be_saved_and_resumed(data, tmp_path):
    with pytest.raises(TrainingInterrupted, match="can be saved with run.save") as caught:
        seqkit.train(**TINY, should_stop=stop_after(60, signal.SIGINT))
    assert caught.value.checkpoint is None
    caught.value.run.save(tmp_path / "saved")
    assert strip(seqkit.train(resume=tmp_path / "saved").history) == strip(seqkit.train(**TINY).history)


def test_resume_with_more_epochs_matches_a_longer_run(data, tmp_path):
    out = tmp_path / "run"
    seqkit.train(**{**TINY, "epochs": 2, "no_detach": True, "max_tokens": 600}, out=str(out))
    resumed = seqkit.train(resume=out, epochs=4, log_every=2)
    baseline = seqkit.train(**{**TINY, "no_detach": True, "max_tokens": 600})
    assert strip(resumed.history) == strip(baseline.history)
    assert resumed.config.log_every == 2


def test_no_detach_resumes_mid_epoch(data, tmp_path):
    options = {**TINY, "no_detach": True, "max_tokens": 600, "epochs": 2}
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        seqkit.train(**options, out=str(out), should_stop=stop_after(17))
    assert strip(seqkit.train(resume=out).history) == strip(seqkit.train(**options).history)


def test_resume_on_another_backend_continues(data, tmp_path):
    need_backend("torch")
    out = tmp_path / "run"
    seqkit.train(**{**TINY, "epochs": 2, "backend": "torch"}, out=str(out))
    resumed = seqkit.train(resume=out, epochs=3, backend="numpy")
    assert len(resumed.history) == 3 and resumed.backend.name == "numpy"
    baseline = seqkit.train(**{**TINY, "epochs": 3})
    assert resumed.history[-1]["train_ppl"] == pytest.approx(baseline.history[-1]["train_ppl"], rel=1e-3)


def test_cli_resume_matches_an_uninterrupted_cli_run(data, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert invoke("run", *TINY_CLI, "--epochs", "4", "--out", full).exit_code == 0
    assert invoke("run", *TINY_CLI, "--epochs", "2", "--out", part).exit_code == 0
    result = invoke("run", "--resume", part, "--epochs", "4", "--log-every", "1")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 2" in result.output and "epoch    3/4" in result.output
    rows = [read_metrics(folder)
            for folder in (full, part)]
    assert strip(rows[0]) == strip(rows[1]) and len(rows[0]) == 4


def run_until_first_epoch(out: Path, signum: int) -> tuple[int, str]:
    """Start `seqkit run` in a subprocess, send ``signum`` once it printed an epoch, return (rc, stderr)."""
    env = {**os.environ, "SEQKIT_DATA": str(SHARED_CORPORA), "PYTHONUNBUFFERED": "1"}
    code = "from seqkit.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", *TINY_CLI, "--epochs", "100000", "--log-every", "1", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("epoch"):
                proc.send_signal(signum)
                break
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_checkpoint_and_exits_non_zero(data, tmp_path, signum, status):
    out = tmp_path / "run"
    rc, err = run_until_first_epoch(out, signum)
    assert rc == status, err
    assert "Traceback" not in err and f"checkpoint saved in {out / 'checkpoint'}" in err
    assert f"seqkit run --resume {out}" in err
    state = read_checkpoint(out).state["training"]
    done = state["epoch"] + 2
    resumed = seqkit.train(resume=out, epochs=done)
    assert strip(resumed.history) == strip(seqkit.train(**{**TINY, "epochs": done}).history)


def test_stop_signals_ask_once_then_stop_at_once():
    stop = StopSignals()
    previous = signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() == signal.SIGTERM
        with pytest.raises(TrainingInterrupted):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_checkpoint_every(data, tmp_path):
    for every, expected in ((2, [2, 4, 5]), (0, [5])):
        seen = []

        def progress(event, payload):
            if event == "checkpoint":
                seen.append(json.loads((Path(payload) / "state.json").read_text())["training"]["epoch"])

        seqkit.train(**{**TINY, "epochs": 5, "max_tokens": 600}, checkpoint_every=every, out=str(tmp_path / str(every)),
                     progress=progress)
        assert seen == expected


# -- atomic writes ------------------------------------------------------------------------------
def test_a_crash_while_writing_keeps_the_previous_checkpoint(trained, monkeypatch):
    run, out = trained
    before = (out / "checkpoint" / "state.json").read_bytes()
    real_write = ckpt_module._write_file

    def half_then_crash(path, data):
        if path.name == "state.json":
            path.with_name(".state.json.tmp").write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(ckpt_module, "_write_file", half_then_crash)
    run.fit_state.epoch, run.history = 3, run.history + [run.history[-1]]
    with pytest.raises(CheckpointError, match="No space left on device"):
        run.save(out)
    assert (out / "checkpoint" / "state.json").read_bytes() == before
    assert not (out / ".checkpoint.new").exists()
    assert seqkit.load(out).predict(length=20) == seqkit.load(out / "checkpoint").predict(length=20)
    assert read_checkpoint(out).epoch == 2


def test_a_crash_between_the_renames_falls_back_to_the_previous_checkpoint(trained, monkeypatch):
    run, out = trained
    real_replace = os.replace

    def crash_on_swap(src, dst):
        if Path(src).name == ".checkpoint.new":
            raise KeyboardInterrupt  # as if the process died here
        real_replace(src, dst)

    monkeypatch.setattr(ckpt_module.os, "replace", crash_on_swap)
    with pytest.raises(KeyboardInterrupt):
        run.save(out)
    monkeypatch.setattr(ckpt_module.os, "replace", real_replace)
    assert not (out / "checkpoint").exists() and (out / ".checkpoint.old").is_dir()
    assert read_checkpoint(out).folder == out / ".checkpoint.old"
    assert read_checkpoint(out / "checkpoint").epoch == 2
    assert seqkit.load(out).predict(length=20) == run.predict(length=20)
    run.save(out)  # the next save restores order
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint"]


def test_a_reader_caught_between_the_two_renames_of_a_swap_reads_again(trained, monkeypatch):
    """A writer swaps checkpoints by renaming the old folder aside, then the new one in. A reader
    that found checkpoint/ just before the first rename sees the path missing when it looks again:
    that is a change (read again, from the folder set aside), not a damaged checkpoint."""
    from seqkit import checkpoint as checkpoint_module

    _, out = trained
    real_locate = checkpoint_module.locate
    calls = []

    def locate_then_first_rename(path):
        folder = real_locate(path)
        if not calls:
            os.replace(folder, out / ".checkpoint.old")  # the writer's first rename lands here
        calls.append(folder)
        return folder

    monkeypatch.setattr(checkpoint_module, "locate", locate_then_first_rename)
    ckpt = read_checkpoint(out)
    assert ckpt.folder == out / ".checkpoint.old" and ckpt.epoch == 2 and len(calls) == 2


def test_debris_of_a_hard_crash_is_ignored_and_cleaned(trained):
    run, out = trained
    debris = out / ".checkpoint.new"
    debris.mkdir()
    (debris / "model.safetensors").write_bytes(b"\x10\x00")
    assert read_checkpoint(out).folder == out / "checkpoint"
    run.save(out)
    assert not debris.exists()


# -- generate and evaluate on any backend -------------------------------------------------------
def test_greedy_generation_is_the_same_on_every_backend(data, tmp_path):
    need_backend("torch")
    out = tmp_path / "run"
    seqkit.train(**{**TINY, "hidden": 32, "epochs": 3, "backend": "torch"}, out=str(out))
    args = ["generate", out, "--prefix", "time traveller", "--length", "60", "--decoder", "greedy"]
    texts = {"torch": invoke(*args, "--backend", "torch"), "numpy": invoke(*args, "--backend", "numpy")}
    assert texts["numpy"].exit_code == 0, texts["numpy"].output
    texts = {k: v.output for k, v in texts.items()}
    try:
        need_backend("mxnet")
    except pytest.skip.Exception:
        pass
    else:  # in its own process: MXNet's OpenMP runtime slows later torch work in this one
        env = {**os.environ, "SEQKIT_DATA": str(SHARED_CORPORA)}
        done = subprocess.run([sys.executable, "-c", "from seqkit.cli import main; main()", *map(str, args),
                               "--backend", "mxnet"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        texts["mxnet"] = done.stdout
    assert texts["numpy"].startswith("time traveller") and len(texts["numpy"]) == len("time traveller") + 61
    assert len(set(texts.values())) == 1, texts


def test_generate_samples_with_a_seed(trained):
    _, out = trained
    args = ["generate", out, "--decoder", "temperature", "--temperature", "0.8", "--length", "30", "--seed", "7"]
    two = invoke(*args, "--num-samples", "2")
    assert two.exit_code == 0, two.output
    assert two.output == invoke(*args, "--num-samples", "2").output
    samples = [line for line in two.output.splitlines() if not line.startswith("---")]
    assert len(samples) == 2 and samples[0] != samples[1]
    assert invoke(*args).output.strip() == samples[0]


def test_evaluate_prints_perplexity_and_the_unknown_token_policy(trained, tmp_path):
    run, out = trained
    result = invoke("evaluate", out, "--max-tokens", "1500")
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output and "bits per token" in result.output and "timemachine" in result.output
    text = tmp_path / "other.txt"
    text.write_text("The Time Traveller (for so it will be convenient to speak of him)")
    result = invoke("evaluate", out, "--corpus-file", text, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    expected = run.evaluate(text.read_text())
    assert report["ppl"] == pytest.approx(expected["ppl"], rel=1e-6) and report["unknown_policy"] == "counted as <unk>"
    plain = invoke("evaluate", out, "--corpus-file", text)
    assert f"{expected['unknown_tokens']}, counted as <unk>" in plain.output


def test_evaluate_without_unk_in_the_vocabulary_is_a_clear_error(data, tmp_path):
    corpus = tmp_path / "words.txt"
    corpus.write_text("the cat sat on the mat " * 60)
    out = tmp_path / "run"
    seqkit.train(**{**TINY, "corpus": "file", "epochs": 1, "max_tokens": None}, corpus_file=str(corpus), tokens="word",
                 prefix="the cat", out=str(out))
    other = tmp_path / "other.txt"
    other.write_text("the dog sat")
    assert_clean_error(invoke("evaluate", out, "--corpus-file", other), "'dog'", "no <unk>")
    with pytest.raises(DataError, match="no <unk>"):
        seqkit.load(out).evaluate("the dog sat")


# -- bad input ----------------------------------------------------------------------------------
def damage(out: Path, how: str) -> None:
    folder = out / "checkpoint"
    model, state_file = folder / "model.safetensors", folder / "state.json"
    state = json.loads(state_file.read_text())
    if how == "truncated":
        model.write_bytes(model.read_bytes()[:-100])
    elif how == "corrupted":
        data = bytearray(model.read_bytes())
        data[-5] ^= 0xFF
        model.write_bytes(bytes(data))
    elif how == "garbage":
        model.write_bytes(b"not a safetensors file at all")
    elif how == "no model":
        model.unlink()
    elif how == "no state":
        state_file.unlink()
    elif how == "malformed":
        state_file.write_text(state_file.read_text()[:200])
    elif how == "future version":
        state_file.write_text(json.dumps({**state, "format_version": FORMAT_VERSION + 1}))
    elif how == "string version":
        state_file.write_text(json.dumps({**state, "format_version": "1"}))
    elif how == "other hidden":
        state["config"]["hidden"] = 32
        state_file.write_text(json.dumps(state))
    elif how == "shorter vocab":
        state["vocab"] = state["vocab"][:-1]
        state_file.write_text(json.dumps(state))
    elif how == "manifest":
        state["model"]["arrays"]["W_hh"]["shape"] = [4, 4]
        state_file.write_text(json.dumps(state))
    elif how == "missing field":
        del state["training"]["epoch"]
        state_file.write_text(json.dumps(state))
    elif how == "no marker":
        del state["format"]
        state_file.write_text(json.dumps(state))
    elif how == "other tool":
        state_file.unlink()
        save_file({"encoder.weight": np.zeros((2, 3), np.float32)}, str(model), metadata={"format": "pt"})
    elif how == "other weights":
        save_file({"encoder.weight": np.zeros((2, 3), np.float32)}, str(model))


BAD = {
    "truncated": "truncated or corrupted",
    "corrupted": "does not match state.json",
    "garbage": "truncated or corrupted",
    "no model": "model.safetensors is missing",
    "no state": "state.json is missing",
    "malformed": "is not valid JSON",
    "future version": "format version 2; seqkit",
    "string version": "format version '1'",
    "other hidden": "W_hh is (16, 16) in model.safetensors but the config in state.json",
    "shorter vocab": "W_hq is (16, 27) in model.safetensors but the config in state.json",
    "manifest": "W_hh is (16, 16) in model.safetensors but state.json lists (4, 4)",
    "missing field": "training.epoch is missing",
    "no marker": "was not written by seqkit",
    "other tool": "was not written by seqkit (no seqkit format marker; tensors: encoder.weight)",
    "other weights": "was not written by seqkit",
}


@pytest.mark.parametrize("how", list(BAD))
def test_a_damaged_or_foreign_checkpoint_is_a_one_line_error(trained, how):
    _, out = trained
    damage(out, how)
    with pytest.raises(CheckpointError, match=BAD[how].replace("(", r"\(").replace(")", r"\)")):
        seqkit.load(out)
    assert_clean_error(invoke("generate", out), BAD[how])
    assert_clean_error(invoke("evaluate", out), BAD[how])
    assert_clean_error(invoke("run", "--resume", out, "--epochs", "3"), BAD[how])


def test_missing_paths_and_folders_without_a_checkpoint(data, tmp_path):
    assert_clean_error(invoke("generate", tmp_path / "nowhere"), "does not exist")
    assert_clean_error(invoke("evaluate", tmp_path), "holds no seqkit checkpoint")
    (tmp_path / "notes.txt").write_text("x")
    assert_clean_error(invoke("generate", tmp_path / "notes.txt"), "is not a seqkit checkpoint")
    assert_clean_error(invoke("run", "--resume", tmp_path / "nowhere"), "does not exist")


def test_resume_with_contradicting_options_names_them(trained):
    _, out = trained
    result = invoke("run", "--resume", out, "--epochs", "3", "--hidden", "32", "--cell", "rnn-relu", "--seed", "0")
    assert_clean_error(result, "--hidden 32 (checkpoint: 16)", "--cell rnn-relu (checkpoint: rnn-tanh)",
                       "contradict the checkpoint")
    assert "--seed" not in result.output  # the same value does not contradict
    assert_clean_error(invoke("run", "--resume", out, "--epochs", "3", "--corpus", "shakespeare"),
                       "--corpus shakespeare")
    assert_clean_error(invoke("run", "--resume", out, "--epochs", "3", "--max-tokens", "3000"), "--max-tokens 3000")
    assert_clean_error(invoke("run", "--resume", out, "--epochs", "3", "--no-detach"),
                       "--no-detach on (checkpoint: off)")
    assert_clean_error(invoke("run", "--resume", out), "already completed all 2 epochs")
    assert_clean_error(invoke("run", "--resume", out, "--epochs", "2"), "--epochs 2", "pass a larger --epochs")
    with pytest.raises(CheckpointError, match="--batch-size 8"):
        seqkit.train(resume=out, epochs=3, batch_size=8)


def test_resume_refuses_a_changed_training_text(data, tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text("abcd " * 400)
    out = tmp_path / "run"
    seqkit.train(**{**TINY, "corpus": "file", "epochs": 1, "max_tokens": None}, corpus_file=str(corpus), prefix="ab", out=str(out))
    corpus.write_text("abdc " * 400)
    assert_clean_error(invoke("run", "--resume", out, "--epochs", "2"), "training text differs")
    moved = tmp_path / "moved.txt"
    moved.write_text("abcd " * 400)
    assert len(seqkit.train(resume=out, epochs=2, corpus_file=str(moved)).history) == 2
