"""One writer per run folder (seqkit.runlock), tested with real processes: a second run, a resume
or a save into a folder a run is writing is refused naming that process; readers still read."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import seqkit
from seqkit.checkpoint import CheckpointError, read_checkpoint
from seqkit.cli import main
from seqkit.runlock import LOCK_FILE, RunLock, RunLockedError, guard_run_dir, holds_run_locks, lock_holder, \
    lock_run_dir
from helpers import assert_clean_error

REPO = Path(__file__).resolve().parents[1]
TINY = dict(corpus="timemachine", max_tokens=2000, hidden=16, batch_size=4, num_steps=10, epochs=2, seed=0,
            predict_len=12)

# A training process that holds its folder's lock and waits at the start of training until told to go.
_HOLDER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import seqkit

    options, ready, go = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

    def progress(event, payload):
        if event == "start":
            ready.write_text("ready")
            deadline = time.monotonic() + 120
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    seqkit.train(progress=progress, **options)
""")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    return env


class Holder:
    """A real `seqkit.train` process paused at the start of training, holding its folder's lock."""

    def __init__(self, tmp_path: Path, **options) -> None:
        self.ready, self.go = tmp_path / "ready", tmp_path / "go"
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, json.dumps(options), str(self.ready),
                                      str(self.go)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"holder did not start: {self.proc.communicate()[1][-2000:]}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self) -> tuple[int, str]:
        self.go.write_text("go")
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=60)


@pytest.fixture
def run_dir(corpora_dir, tmp_path, monkeypatch):
    """A finished 2-epoch run folder (unlocked)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    seqkit.train(**TINY, out=str(out))
    assert not (out / LOCK_FILE).exists()
    return out


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_running_run_locks_out_writers_but_not_readers(run_dir, tmp_path):
    holder = Holder(tmp_path, resume=str(run_dir), epochs=3)
    try:
        recorded = lock_holder(run_dir)
        assert recorded is not None and recorded.pid == holder.pid and recorded.alive()
        before = (run_dir / "metrics.jsonl").read_text()

        second = invoke("run", *_tiny_cli(), "--out", run_dir)
        assert_clean_error(second, f"{run_dir} is locked by a seqkit run writing it: process {holder.pid} on",
                           "choose another --out")
        resumed = invoke("run", "--resume", run_dir, "--epochs", "4")
        assert_clean_error(resumed, f"process {holder.pid}", "before resuming")
        elsewhere = invoke("run", "--resume", run_dir, "--epochs", "4", "--out", tmp_path / "other")
        assert_clean_error(elsewhere, f"process {holder.pid}", "before resuming")
        with pytest.raises(RunLockedError, match=f"process {holder.pid} .*save elsewhere"):
            seqkit.load(run_dir).save(run_dir)
        assert (run_dir / "metrics.jsonl").read_text() == before  # nothing of the refused runs was written

        generated = invoke("generate", run_dir, "--length", "5")  # readers read the last checkpoint
        assert generated.exit_code == 0 and generated.output.strip(), generated.output
        assert invoke("evaluate", run_dir, "--max-tokens", "200").exit_code == 0
        assert seqkit.load(run_dir).predict("time", 3)
    finally:
        rc, err = holder.finish()
    assert rc == 0, err
    assert not (run_dir / LOCK_FILE).exists()
    assert read_checkpoint(run_dir).epoch == 3
    assert seqkit.train(resume=run_dir, epochs=4).history[-1]["epoch"] == 4  # free again


def _tiny_cli() -> list[str]:
    return ["--max-tokens", "2000", "--hidden", "16", "--batch-size", "4", "--num-steps", "10", "--epochs", "1"]


def test_the_cli_names_the_process_from_another_process(run_dir, tmp_path):
    holder = Holder(tmp_path, resume=str(run_dir), epochs=3)
    try:
        result = subprocess.run([sys.executable, "-c", "from seqkit.cli import main; main()", "run", *_tiny_cli(),
                                 "--out", str(run_dir)], capture_output=True, text=True, env=_env(), timeout=120)
    finally:
        holder.finish()
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"process {holder.pid} on " in lines[0] and "Traceback" not in result.stderr, lines


def test_a_killed_run_leaves_a_stale_lock_that_is_taken_over(run_dir, tmp_path):
    holder = Holder(tmp_path, resume=str(run_dir), epochs=3)
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.communicate(timeout=60)
    stale = lock_holder(run_dir)
    assert stale is not None and stale.pid == holder.pid and stale.alive() is False  # the file is left behind
    lock = RunLock(run_dir).acquire()
    try:
        assert lock.took_over is not None and lock.took_over.pid == holder.pid
        assert lock_holder(run_dir).pid == os.getpid()
    finally:
        lock.release()
    assert not (run_dir / LOCK_FILE).exists()
    assert seqkit.train(resume=run_dir, epochs=3).history[-1]["epoch"] == 3


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    first = RunLock(tmp_path).acquire()
    try:
        with pytest.raises(RunLockedError, match=rf"process {os.getpid()} \(this process\)"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / LOCK_FILE).exists()


def test_scopes_release_on_error_and_reuse_their_own_lock(tmp_path):
    @holds_run_locks
    def work(fail: bool) -> None:
        assert lock_run_dir(tmp_path) is lock_run_dir(tmp_path)
        with guard_run_dir(tmp_path):  # held by this scope already: no second lock
            pass
        if fail:
            raise ValueError("boom")

    with pytest.raises(ValueError):
        work(True)
    assert not (tmp_path / LOCK_FILE).exists()
    work(False)
    assert lock_run_dir(tmp_path) is None  # outside a scope nothing is locked


def test_two_threads_cannot_train_into_one_folder(corpora_dir, tmp_path):
    out = tmp_path / "run"
    entered, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def progress(event, payload):
        if event == "start":
            entered.set()
            release.wait(60)

    thread = threading.Thread(target=lambda: seqkit.train(**TINY, out=str(out), progress=progress))
    thread.start()
    try:
        assert entered.wait(60)
        with pytest.raises(RunLockedError, match=r"\(this process\)"):
            seqkit.train(**TINY, out=str(out))
    except BaseException as exc:
        errors.append(exc)
    finally:
        release.set()
        thread.join(60)
    assert not errors, errors
    assert read_checkpoint(out).epoch == 2


def test_readers_see_complete_checkpoints_while_a_run_writes(corpora_dir, tmp_path):
    """A real process checkpoints after every epoch while this one loads the folder in a loop."""
    out = tmp_path / "run"
    options = {**TINY, "epochs": 400, "checkpoint_every": 1, "sample_every": 1000, "out": str(out)}
    writer = subprocess.Popen([sys.executable, "-c", "import json, sys, seqkit; seqkit.train(**json.loads(sys.argv[1]))",
                               json.dumps(options)], env=_env(), stderr=subprocess.PIPE, text=True)
    loads, epochs, failures = 0, set(), []
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop = time.monotonic() + 4
        while time.monotonic() < stop and writer.poll() is None:
            try:
                ckpt = read_checkpoint(out)
            except CheckpointError as exc:
                failures.append(str(exc))
                continue
            loads += 1
            epochs.add(ckpt.epoch)
    finally:
        writer.kill()
        writer.communicate(timeout=60)
    assert loads > 10 and len(epochs) > 3, (loads, epochs)
    assert not failures, failures[:3]


def test_without_os_locks_a_live_recorded_pid_keeps_the_folder(tmp_path, monkeypatch):
    """File systems without flock: the PID in the lock file decides (live: refused, dead: taken over)."""
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                       "command": "seqkit run", "since": "then"}))
        with pytest.raises(RunLockedError, match=rf"process {sleeper.pid} on .*delete .*{LOCK_FILE}"):
            RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = RunLock(tmp_path).acquire()
    assert lock.took_over is not None and lock.took_over.pid == sleeper.pid
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()
