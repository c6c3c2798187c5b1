"""Bounded reads and lengths (seqkit.limits), corpora that are not regular files, and decoders that
stay finite for hostile temperatures, alphas and logits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import seqkit
from seqkit import limits
from seqkit.data import read_text_file
from seqkit.errors import ConfigError, DataError, SeqkitError
from seqkit.limits import check_safetensors_header, describe_size, read_bounded
from seqkit.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    return env


# -- read_bounded ---------------------------------------------------------------------------------
def test_read_bounded_reads_a_regular_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    assert read_bounded(path, 5) == b"hello"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_bounded(empty, 5) == b""


def test_read_bounded_refuses_a_file_over_the_cap_with_its_size(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 3000)
    with pytest.raises(DataError, match=r"big.txt is 2.93 KiB, more than the 1 KiB seqkit reads as a text file; "
                                        "split it"):
        read_bounded(path, 1024, DataError, "text file", "split it")


def test_read_bounded_caps_files_that_report_size_zero():
    with pytest.raises(SeqkitError, match="grew while being read"):
        read_bounded("/proc/self/status", 10)
    assert b"Name:" in read_bounded("/proc/self/status", 1 << 20)


@pytest.mark.parametrize("kind", ["character device", "named pipe", "socket", "folder"])
def test_read_bounded_refuses_non_regular_files_without_blocking(tmp_path, kind):
    if kind == "character device":
        path = Path("/dev/zero")
    elif kind == "named pipe":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif kind == "socket":
        path = tmp_path / "sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    else:
        path = tmp_path
    result: list = []
    reader = threading.Thread(target=lambda: result.append(_catch(lambda: read_bounded(path, 1 << 20, DataError))),
                              daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), f"reading a {kind} blocked"
    assert isinstance(result[0], DataError) and f"is a {kind}" in str(result[0]), result


def _catch(fn):
    try:
        return fn()
    except Exception as exc:  # the test inspects it
        return exc


def test_read_bounded_refuses_a_symlink_to_a_device(tmp_path):
    link = tmp_path / "model.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(SeqkitError, match="is a character device"):
        read_bounded(link, 100)


def test_describe_size():
    assert describe_size(10) == "10 bytes"
    assert describe_size(1536) == "1.5 KiB"
    assert describe_size(29.1 * 2**40) == "29.1 TiB"


def test_safetensors_header_bounds():
    with pytest.raises(SeqkitError, match="truncated or corrupted"):
        check_safetensors_header(b"\x01\x02", "m")
    huge = (1 << 62).to_bytes(8, "little") + b"{}"
    with pytest.raises(SeqkitError, match="header claims"):
        check_safetensors_header(huge, "m")
    too_big = (limits.MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b" " * (limits.MAX_HEADER_BYTES + 1)
    with pytest.raises(SeqkitError, match="at most 16 MiB"):
        check_safetensors_header(too_big, "m")
    check_safetensors_header((2).to_bytes(8, "little") + b"{}", "m")


def test_model_read_limit_follows_the_manifest():
    manifest = {"W": {"shape": [10, 10]}, "b": {"shape": [10]}, "bad": {"shape": ["x"]}, "odd": 3}
    assert limits.model_read_limit(manifest) <= 8 + limits.MAX_HEADER_BYTES + 8 * 110
    assert limits.model_read_limit(None) > limits.model_read_limit({})


# -- corpora ----------------------------------------------------------------------------------------
def test_a_corpus_larger_than_the_cap_is_refused_with_its_size(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("abc " * 1000)
    with pytest.raises(DataError, match=r"corpus.txt is 3.91 KiB, more than the 1 KiB"):
        read_text_file(path, max_bytes=1024)


def test_the_corpus_cap_follows_available_memory(monkeypatch, tmp_path):
    import seqkit.resources

    monkeypatch.setattr(seqkit.resources, "available_memory", lambda: 64 << 20 << 5)  # 2 GiB
    assert limits.max_corpus_bytes() == 64 << 20
    monkeypatch.setattr(seqkit.resources, "available_memory", lambda: None)
    assert limits.max_corpus_bytes() == limits.MAX_CORPUS_BYTES
    monkeypatch.setattr(seqkit.resources, "available_memory", lambda: 1 << 25)  # 32 MiB: 1 MiB floor
    assert limits.max_corpus_bytes() == 1 << 20
    path = tmp_path / "corpus.txt"
    path.write_text("a" * (2 << 20))
    with pytest.raises(DataError, match=r"is 2 MiB, more than the 1 MiB seqkit reads as a text file"):
        seqkit.train(corpus_file=str(path), epochs=1)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_the_cli_refuses_a_device_or_pipe_as_corpus_at_once(tmp_path, target):
    if target == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    result = subprocess.run(
        [sys.executable, "-c", "from seqkit.cli import main; main()", "run", "--corpus-file", target,
         "--out", str(tmp_path / "run"), "--epochs", "1"],
        capture_output=True, text=True, env=_env(), timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"Error: {target} is a {'character device' if target.startswith('/dev/') else 'named pipe'}, "
                     "not a regular file: pass a text file on disk"]


# -- lengths ----------------------------------------------------------------------------------------
def test_predict_and_prefix_lengths_are_bounded(corpora_dir, tiny):
    with pytest.raises(ConfigError, match="--predict-len must be >= 0 and <= 1,000,000, got 1000000000000"):
        seqkit.train(**{**tiny, "predict_len": 10**12})
    run = seqkit.train(**tiny)
    with pytest.raises(ConfigError, match="--predict-len must be >= 0 and <= 1,000,000, got -1"):
        run.predict("time", -1)
    with pytest.raises(ConfigError, match="--predict-len must be"):
        run.predict("time", 10**9)
    with pytest.raises(ConfigError, match="--prefix has 1,000,001 characters"):
        run.predict("t" * 1_000_001, 1)
    with pytest.raises(ConfigError, match="--prefix is 1,000,001 characters long; the limit is 10,000"):
        seqkit.train(**{**tiny, "prefix": "t" * 1_000_001})
    assert len(run.predict("time", 5)) == 9


# -- numerically hostile decoding -----------------------------------------------------------------
HOSTILE_LOGITS = [
    np.array([0.0, 1.0, 2.0, -1.0]),
    np.array([1e308, -1e308, 0.0, 1e308]),
    np.array([3.4e38, -3.4e38, 1.0, 2.0], dtype=np.float32),
    np.array([np.inf, 0.0, 1.0, 2.0]),
    np.array([-np.inf, 0.0, 1.0, -np.inf]),
    np.array([np.nan, 0.0, 1.0, 2.0]),
    np.array([5e-324, 0.0, -5e-324, 1e-300]),
    np.full(4, 7.0),
]
DECODERS = [("greedy", {}), ("temperature", {"temperature": 1e-308}), ("temperature", {"temperature": 5e-324}),
            ("temperature", {"temperature": 1e-30}), ("temperature", {"temperature": 1.0}),
            ("temperature", {"temperature": 1e308}), ("temperature", {"temperature": float("inf")}),
            ("alpha", {"alpha": 1e-308}), ("alpha", {"alpha": 1e308}), ("alpha", {"alpha": 1.0})]


@pytest.mark.parametrize("name,options", DECODERS, ids=[f"{n}-{o}" for n, o in DECODERS])
def test_every_decoder_stays_finite(name, options):
    decoder = get_registry().create("decoder", name, **options)
    rng = np.random.default_rng(0)
    for logits in HOSTILE_LOGITS:
        probs = decoder.distribution(logits)
        assert probs.shape == logits.shape and np.all(np.isfinite(probs)) and np.all(probs >= 0), (logits, probs)
        assert abs(probs.sum() - 1.0) < 1e-9, (logits, probs)
        for _ in range(5):
            assert 0 <= decoder.choose(logits, rng) < len(logits)


@pytest.mark.parametrize("temperature", [1e-308, 5e-324, 1e-200])
def test_a_tiny_temperature_is_greedy_not_the_last_id(temperature):
    decoder = get_registry().create("decoder", "temperature", temperature=temperature)
    rng = np.random.default_rng(0)
    for best in range(5):
        logits = np.linspace(-1.0, 1.0, 6)
        logits[best], logits[-1] = 5.0, logits[best]
        assert [decoder.choose(logits, rng) for _ in range(20)] == [best] * 20


def test_tiny_temperature_generation_matches_greedy(corpora_dir, tiny):
    run = seqkit.train(**tiny)
    greedy = run.predict("time traveller", 30, decoder="greedy")
    assert run.predict("time traveller", 30, decoder="temperature", temperature=1e-308) == greedy


@pytest.mark.parametrize("options", [["--lr", "1e308"], ["--optimizer", "adam", "--eps", "5e-324"]])
def test_overflowing_training_is_one_line_without_numpy_warnings(corpora_dir, tmp_path, options):
    result = subprocess.run(
        [sys.executable, "-c", "from seqkit.cli import main; main()", "run", "--max-tokens", "3000", "--hidden", "16",
         "--epochs", "2", "--out", str(tmp_path / "run"), *options],
        capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: loss became nan"), lines
