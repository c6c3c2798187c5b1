"""The CLI end to end on a small budget, and every bad input as a one-line error."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from seqkit.cli import main
from seqkit_corpora.builtin import TimeMachine
from helpers import assert_clean_error

TINY = ["--max-tokens", "3000", "--hidden", "24", "--batch-size", "4", "--num-steps", "10", "--epochs", "2",
        "--predict-len", "12"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_run_end_to_end(corpora_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--corpus", "timemachine", *TINY, "--out", str(out), "--log-every", "1")
    assert result.exit_code == 0, result.output
    assert "epoch    2/2" in result.output and "train ppl" in result.output
    assert "sample:" in result.output and "time traveller" in result.output
    assert (out / "summary.json").exists()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["header"]["config"]["epochs"] == 2


def test_run_default_out_is_a_new_folder_under_runs(corpora_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", *TINY)
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.endswith("-timemachine-numpy")
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"


def test_run_on_a_text_file(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("\ufeff*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + "abc abd " * 400 +
                    "\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence", encoding="utf-8")
    result = invoke("run", "--corpus-file", str(text), *TINY, "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["vocab_size"] == 5  # a b c d and space: BOM, header and footer are gone


def test_help_is_fast_and_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0 and "run" in result.output and "plugins" in result.output


@pytest.mark.parametrize("option, value, names", [
    ("--backend", "jax", "numpy"), ("--corpus", "wiki", "lyrics, shakespeare, timemachine"),
    ("--cell", "lstm", "rnn-relu, rnn-tanh"), ("--sampler", "shuffle", "random, sequential"),
    ("--clipper", "value", "none, norm"), ("--decoder", "nucleus", "alpha, beam, greedy, temperature, top-k, top-p"),
])
def test_unknown_names_list_the_valid_ones(corpora_dir, option, value, names):
    assert_clean_error(invoke("run", *TINY, option, value), f"{value!r}", names)


@pytest.mark.parametrize("option, value", [
    ("--hidden", "0"), ("--batch-size", "0"), ("--num-steps", "-1"), ("--epochs", "0"), ("--lr", "0"),
    ("--lr", "-0.5"), ("--clip-theta", "0"), ("--temperature", "-1"), ("--alpha", "0"),
    ("--val-fraction", "1"), ("--val-fraction", "-0.2"),
])
def test_invalid_hyper_parameters(corpora_dir, option, value):
    assert_clean_error(invoke("run", *TINY, option, value), option)


def test_corpus_not_available_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQKIT_DATA", str(tmp_path))
    monkeypatch.setattr(TimeMachine, "url", "http://127.0.0.1:9/timemachine.txt")
    assert_clean_error(invoke("run", *TINY), "timemachine.txt", "http://127.0.0.1:9/timemachine.txt")


def test_sha1_mismatch(corpora_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "timemachine.txt").write_text("not the time machine")
    assert_clean_error(invoke("run", *TINY, "--data-dir", str(data)), "SHA-1")


def test_missing_empty_and_undecodable_files(tmp_path):
    assert_clean_error(invoke("run", *TINY, "--corpus-file", str(tmp_path / "nope.txt")), "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert_clean_error(invoke("run", *TINY, "--corpus-file", str(empty)), "empty")
    bad = tmp_path / "latin.txt"
    bad.write_bytes(b"abc" * 10 + "é".encode("latin-1") + b"abc" * 300)
    assert_clean_error(invoke("run", *TINY, "--corpus-file", str(bad)), "byte offset 30", "--encoding")
    ok = invoke("run", *TINY, "--corpus-file", str(bad), "--encoding", "latin-1", "--out", str(tmp_path / "o"))
    assert ok.exit_code == 0, ok.output


def test_num_steps_too_long(corpora_dir):
    assert_clean_error(invoke("run", *TINY, "--max-tokens", "60", "--num-steps", "50"), "--num-steps")


def test_prefix_with_unseen_tokens(corpora_dir):
    assert_clean_error(invoke("run", *TINY, "--prefix", "Time Traveller"), "'T'")


def test_unwritable_output_folder(corpora_dir, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = invoke("run", *TINY, "--out", str(blocker / "run"))
    assert_clean_error(result, "cannot write to output folder")
    assert "epoch" not in result.output  # failed before training


def test_lyrics_prefix_generation(corpora_dir, tmp_path):
    result = invoke("run", "--corpus", "lyrics", "--max-tokens", "2000", "--hidden", "16", "--batch-size", "4",
                    "--num-steps", "8", "--epochs", "1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "分开" in result.output
