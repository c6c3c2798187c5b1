"""No code runs when seqkit reads a checkpoint: pickle payloads that create a file when unpickled are
planted under every name a loader might look at, and the file is never created.

(The older test in test_checkpoint.py greps seqkit's source for "pickle"; it cannot catch a
dependency that unpickles. These tests execute the loaders.)"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import seqkit
from seqkit.checkpoint import CheckpointError
from seqkit.errors import SeqkitError

REPO = Path(__file__).resolve().parents[1]
TINY = dict(corpus="timemachine", max_tokens=2000, hidden=16, batch_size=4, num_steps=10, epochs=2, seed=0,
            predict_len=12)
# Names a loader might look for in a checkpoint or run folder: torch, pickle, NumPy, joblib, HF.
PLANTED = ["model.pt", "model.pth", "checkpoint.pt", "model.bin", "pytorch_model.bin", "optimizer.pt",
           "state.pkl", "model.pkl", "params.pickle", "model.joblib", "params.npy", "state.npy", "arrays.npz",
           "params.npz", "model.npz", "training_args.bin", "rng_state.pth"]


class Payload:
    """Unpickling it creates ``path`` (what an attacker would replace by running any command)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def payload(path: Path) -> bytes:
    return pickle.dumps(Payload(path))


def plant(folder: Path, name: str, marker: Path) -> None:
    """Write a file named ``name`` whose loading by pickle, np.load(allow_pickle=True) or
    torch.load(weights_only=False) creates ``marker``."""
    target = folder / name
    if name.endswith(".npy"):
        np.save(target, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    elif name.endswith(".npz"):
        buffer = io.BytesIO()
        np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr("arr_0.npy", buffer.getvalue())
    else:
        target.write_bytes(payload(marker))


def markers(root: Path) -> list[Path]:
    return sorted(root.glob("pwned-*"))


@pytest.fixture
def hostile_run(corpora_dir, tmp_path, monkeypatch):
    """A valid run folder with pickle payloads planted beside the checkpoint and in it."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    seqkit.train(**TINY, out=str(out))
    for folder in (out, out / "checkpoint"):
        for name in PLANTED:
            plant(folder, name, tmp_path / f"pwned-{folder.name}-{name}")
    return out


def test_the_payload_works_when_unpickled(tmp_path):
    """The test can fail: each planted file does create its marker when loaded with pickle."""
    pickle.loads(payload(tmp_path / "pwned-direct"))
    plant(tmp_path, "x.npy", tmp_path / "pwned-npy")
    np.load(tmp_path / "x.npy", allow_pickle=True)
    plant(tmp_path, "x.npz", tmp_path / "pwned-npz")
    np.load(tmp_path / "x.npz", allow_pickle=True)["arr_0"]
    assert [p.name for p in markers(tmp_path)] == ["pwned-direct", "pwned-npy", "pwned-npz"]


def test_loading_a_folder_full_of_payloads_runs_nothing(hostile_run, tmp_path):
    run = seqkit.load(hostile_run)
    assert run.predict("time", 5)
    seqkit.load(hostile_run / "checkpoint", backend="numpy", impl="scratch").predict("time", 2)
    assert markers(tmp_path) == []


@pytest.mark.parametrize("name", ["model.safetensors", "state.json", "both"])
def test_payloads_in_place_of_the_checkpoint_files_are_refused(hostile_run, tmp_path, name):
    folder = hostile_run / "checkpoint"
    for file in (["model.safetensors", "state.json"] if name == "both" else [name]):
        plant(folder, file, tmp_path / f"pwned-as-{file}")
    with pytest.raises(CheckpointError) as info:
        seqkit.load(hostile_run)
    assert "\n" not in str(info.value)
    assert markers(tmp_path) == []


def test_the_previous_checkpoint_folder_full_of_payloads_runs_nothing(hostile_run, tmp_path):
    old = hostile_run / ".checkpoint.old"
    shutil.copytree(hostile_run / "checkpoint", old)
    shutil.rmtree(hostile_run / "checkpoint")
    for name in ("model.safetensors", *PLANTED):
        plant(old, name, tmp_path / f"pwned-old-{name}")
    with pytest.raises(CheckpointError):
        seqkit.load(hostile_run)
    assert markers(tmp_path) == []


def test_the_cli_generate_evaluate_and_resume_run_nothing(hostile_run, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    code = "from seqkit.cli import main; main()"
    commands = [["generate", str(hostile_run), "--length", "5"],
                ["evaluate", str(hostile_run), "--max-tokens", "300"],
                ["run", "--resume", str(hostile_run), "--epochs", "3"]]
    torch_available = seqkit.plugins.get_registry().component("backend", "torch").unavailable_reason is None
    if torch_available:
        commands.append(["generate", str(hostile_run), "--length", "5", "--backend", "torch"])
    for args in commands:
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                                timeout=300)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    assert markers(tmp_path) == []


def test_api_errors_are_seqkit_errors(hostile_run, tmp_path):
    plant(hostile_run / "checkpoint", "state.json", tmp_path / "pwned-state")
    with pytest.raises(SeqkitError):
        seqkit.train(resume=str(hostile_run), epochs=3)
    assert markers(tmp_path) == []


def _load_in_thread(path: Path):
    import threading

    result: list = []

    def target():
        try:
            result.append(seqkit.load(path))
        except Exception as exc:  # inspected below
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "loading blocked"
    return result[0]


@pytest.mark.parametrize("name,kind", [("model.safetensors", "device"), ("model.safetensors", "fifo"),
                                       ("state.json", "device"), ("state.json", "fifo")])
def test_devices_and_pipes_in_place_of_checkpoint_files_do_not_hang(hostile_run, name, kind):
    target = hostile_run / "checkpoint" / name
    target.unlink()
    if kind == "device":
        target.symlink_to("/dev/zero")
    else:
        os.mkfifo(target)
    error = _load_in_thread(hostile_run)
    assert isinstance(error, CheckpointError), error
    assert "not a regular file" in str(error) and "\n" not in str(error)


def test_an_oversized_weights_file_is_refused_before_it_is_read(hostile_run):
    model = hostile_run / "checkpoint" / "model.safetensors"
    with open(model, "r+b") as f:
        f.truncate(64 << 30)  # sparse: 64 GiB that take no disk
    error = _load_in_thread(hostile_run)
    assert isinstance(error, CheckpointError), error
    assert "model.safetensors is 64 GiB, more than the" in str(error) and "state.json lists arrays" in str(error)


def test_an_oversized_state_json_is_refused_with_its_size(hostile_run):
    state = hostile_run / "checkpoint" / "state.json"
    with open(state, "r+b") as f:
        f.truncate(65 << 20)
    error = _load_in_thread(hostile_run)
    assert isinstance(error, CheckpointError) and "state.json is 65 MiB, more than the 64 MiB" in str(error), error
