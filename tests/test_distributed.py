"""Data-parallel training (torch.distributed, gloo on the CPU): 2 ranks give one process's numbers,
their checkpoints resume in one process, a signal on one rank stops both, a dead rank is reported,
and every mistake is one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import seqkit
from seqkit.cli import StopSignals, main
from seqkit.distributed import check_world, without_option, world_from_env
from seqkit.errors import ConfigError
from helpers import assert_clean_error

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed")

RUN = dict(corpus="timemachine", max_tokens=3000, hidden=32, batch_size=4, num_steps=10, seed=0, predict_len=10,
           sampler="sequential", checkpoint_every=0)
COMPARED = ("train_ppl", "val_ppl", "grad_norm", "clipped_fraction")


def flags(options: dict) -> list[str]:
    return [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", str(value))]


def rows(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def assert_same_history(actual: list[dict], expected: list[dict], rtol: float) -> None:
    assert [r["epoch"] for r in actual] == [r["epoch"] for r in expected]
    for got, want in zip(actual, expected):
        for key in COMPARED:
            if want[key] is None:
                assert got[key] is None, key
            else:
                assert got[key] == pytest.approx(want[key], rel=rtol), (got["epoch"], key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ranks(args: list[str], cwd: Path, world: int = 2, timeout_s: int = 30) -> list[subprocess.Popen]:
    """``python -m seqkit ARGS`` as ``world`` ranks joined through env:// (what torchrun sets up)."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                   RANK=str(rank), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1", SEQKIT_DIST_TIMEOUT=str(timeout_s))
        procs.append(subprocess.Popen([sys.executable, "-m", "seqkit", *args], cwd=cwd, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def wait_for_rows(out: Path, count: int, procs: list[subprocess.Popen], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) > count:
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    for p in procs:
        p.kill()
    pytest.fail("the ranks did not train: " + " | ".join(p.communicate()[1][-500:] for p in procs))


def test_two_ranks_match_one_process_and_resume_in_one(corpora_dir, tmp_path):
    """2 ranks under torchrun (gloo, --impl scratch, float32) give every epoch's numbers of one
    process with the same global batch; only rank 0 prints; the checkpoint goes on in one process."""
    options = dict(RUN, backend="torch", impl="scratch", epochs=2, val_fraction=0.1)
    out = tmp_path / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "seqkit", "run", "-q", *flags(options), "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("Done.") == 1, done.stdout  # rank 1 is silent

    one = seqkit.train(progress=False, **options)
    assert_same_history(rows(out), one.history, rtol=2e-5)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["training"]["epoch"] == 2

    resumed = seqkit.train(progress=False, resume=out, out=str(tmp_path / "resumed"), epochs=3)
    longer = seqkit.train(progress=False, **{**options, "epochs": 3})
    assert_same_history(resumed.history, longer.history, rtol=2e-5)


def test_sigterm_on_one_rank_stops_both_with_a_checkpoint_that_resumes_on_numpy(corpora_dir, tmp_path):
    """SIGTERM to rank 1 alone: both ranks stop at the same minibatch, rank 0 saves the gathered
    carried state (fused torch, float64); one NumPy process resumes it to one process's numbers."""
    options = dict(RUN, backend="torch", impl="fused", dtype="float64", epochs=40, lr=0.3)  # lr 1 turns chaotic
    out = tmp_path / "stopped"
    procs = start_ranks(["run", "-q", *flags(options), "--out", str(out)], tmp_path)
    wait_for_rows(out, 2, procs)  # epoch 1 done: both ranks are in the training loop
    procs[1].send_signal(signal.SIGTERM)
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [143, 143], results
    assert "checkpoint saved" in results[0][1] and results[1] == ("", ""), results
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["training"]["epoch"] < 40
    if state["training"]["position"]:
        assert state["model"]["arrays"]["state.0"]["shape"] == [4, 32]  # both ranks' rows

    numpy_options = {**options, "backend": "numpy"}
    resumed = seqkit.train(progress=False, resume=out, out=str(tmp_path / "resumed"), backend="numpy")
    whole = seqkit.train(progress=False, **numpy_options)
    assert_same_history(resumed.history, whole.history, rtol=1e-9)


def test_nproc_starts_the_ranks_and_passes_a_signal_on(corpora_dir, tmp_path):
    """``seqkit run --nproc 2``: SIGINT to the launcher alone reaches both ranks; one message, exit 130."""
    out = tmp_path / "nproc"
    launcher = subprocess.Popen([sys.executable, "-m", "seqkit", "run", "--nproc", "2", "-q",
                                 *flags(dict(RUN, backend="torch", epochs=1000)), "--out", str(out)],
                                cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_rows(out, 1, [launcher])
    launcher.send_signal(signal.SIGINT)
    stdout, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Interrupted: SIGINT: stopped") and "Traceback" not in stderr, stderr
    assert sum(line.startswith("Interrupted") for line in lines) == 1 and not stdout.strip(), stderr  # -q: silent until done
    assert json.loads((out / "checkpoint" / "state.json").read_text())["training"]["epoch"] >= 1


def test_a_one_process_checkpoint_resumes_on_two_ranks(corpora_dir, tmp_path):
    """Stopped mid-epoch in one process (carried state of 4 rows), continued by ``--nproc 2``
    (each rank takes its 2 rows): the same numbers as one uninterrupted process."""
    options = dict(RUN, backend="torch", dtype="float64", lr=0.3, epochs=3)
    steps = iter(range(1000))
    with pytest.raises(KeyboardInterrupt):
        seqkit.train(progress=False, out=str(tmp_path / "one"), **options,
                     should_stop=lambda: signal.SIGTERM if next(steps) == 100 else None)
    assert json.loads((tmp_path / "one" / "checkpoint" / "state.json").read_text())["training"]["position"]
    done = subprocess.run([sys.executable, "-m", "seqkit", "run", "--nproc", "2", "-q", "--resume", "one",
                           "--out", "two"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_history(rows(tmp_path / "two"), seqkit.train(progress=False, **options).history, rtol=1e-9)


def test_a_dead_rank_stops_the_others_with_one_line(corpora_dir, tmp_path):
    options = dict(RUN, backend="torch", epochs=1000)
    out = tmp_path / "dead"
    procs = start_ranks(["run", "-q", *flags(options), "--out", str(out)], tmp_path, timeout_s=20)
    wait_for_rows(out, 0, procs)
    procs[1].kill()
    _, err = procs[0].communicate(timeout=90)
    assert procs[0].returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: rank 0 of 2:"), err
    assert "another rank died" in lines[0] and "--resume" in lines[0]


@pytest.mark.parametrize("backend, batch, world, fragment", [
    ("numpy", 4, 2, "distributed training is a torch feature"),
    ("torch", 3, 2, "does not divide among 2 ranks: use 2 or 4"),
    ("torch", 2, 4, "4 ranks cannot share --batch-size 2"),
])
def test_impossible_requests_are_one_line(corpora_dir, monkeypatch, backend, batch, world, fragment):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(main, ["run", *flags({**RUN, "backend": backend, "batch_size": batch,
                                                      "epochs": 1})])
    assert_clean_error(result, fragment)
    with pytest.raises(ConfigError, match=fragment.split(":")[0]):
        check_world(backend, batch, world)


def test_nproc_is_checked_before_launching(corpora_dir, monkeypatch):
    result = CliRunner().invoke(main, ["run", "--nproc", "3", *flags({**RUN, "backend": "torch", "epochs": 1})])
    assert_clean_error(result, "--batch-size 4 (the global batch) does not divide among 3 ranks")
    assert_clean_error(CliRunner().invoke(main, ["run", "--nproc", "0"]), "--nproc must be >= 1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(main, ["run", "--nproc", "2", *flags({**RUN, "backend": "torch", "epochs": 1})])
    assert_clean_error(result, "leave it out when running under torchrun")


def test_world_from_env_and_argv():
    assert world_from_env({}) is None and world_from_env({"WORLD_SIZE": "1"}) is None
    world = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.rank, world.world_size, world.local_rank, world.is_main) == (3, 4, 1, False)
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert without_option(["run", "--nproc", "2", "--nproc=3", "--epochs", "2"], "--nproc") == \
        ["run", "--epochs", "2"]


def test_a_forwarded_copy_of_the_signal_is_the_same_request():
    """torchrun passes the terminal's Ctrl-C on to ranks that already got it: not a second request."""
    stop = StopSignals(repeat_grace=5.0)
    stop._handle(signal.SIGINT, None)
    stop._handle(signal.SIGINT, None)
    assert stop() == signal.SIGINT
    at_once = StopSignals()
    at_once._handle(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        at_once._handle(signal.SIGINT, None)


def test_sharded_network_rows_and_states():
    """A rank's share of a batch, and whole states for batches that do not divide (generation)."""
    from seqkit.distributed import DataParallel, ShardedNetwork, World
    from seqkit_cells.rnn import RNNTanh
    from seqkit_torch.backend import TorchBackend
    from seqkit.network import GenericNetwork, ModelSpec

    class Alone(DataParallel):
        def average(self, loss, grads):
            return loss, grads

        def average_scalar(self, value):
            return value

        def gather_rows(self, arrays):
            return arrays

        def agree_stop(self, signum):
            return signum

    backend = TorchBackend("cpu", "float64")
    inner = GenericNetwork(backend, ModelSpec(RNNTanh(), 7, 5))
    net = ShardedNetwork(inner, Alone(World(1, 2, 1)))
    assert net.impl == "scratch" and net.init_state(6)[0].shape == (3, 5) and net.init_state(1)[0].shape == (1, 5)
    params = {k: backend.asarray(v) for k, v in inner.spec.init_params(np.random.default_rng(0)).items()}
    X = np.arange(24).reshape(6, 4) % 7
    loss, grads, final = net.loss_and_grad(params, X, X, net.init_state(6))
    want, want_grads, want_final = inner.loss_and_grad(params, X[3:], X[3:], inner.init_state(3))
    assert loss == want and torch.equal(final[0], want_final[0])
    assert net.parallel.shard_rows((torch.arange(6.0)[:, None],))[0].flatten().tolist() == [3.0, 4.0, 5.0]


def test_two_ranks_agree_on_a_time_budget(corpora_dir, tmp_path):
    """Under --time-budget every rank reads one clock (the ranks' mean): the cosine rate and the
    minibatch training stops at are the same on both, so neither waits on the other."""
    options = dict(RUN, backend="torch", epochs=500, schedule="cosine", time_budget=0.05)
    procs = start_ranks(["run", "-q", *flags(options), "--out", "budget"], tmp_path)
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-800:] for _, err in outputs]
    history = rows(tmp_path / "budget")
    assert history[-1].get("budget_spent") and len(history) < 500
    summary = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert summary["status"] == "budget-spent"
