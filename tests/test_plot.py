"""`seqkit plot`: a PNG of the learning curves, and clear errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import seqkit
from seqkit.cli import main


def test_plot_writes_a_png(corpora_dir, tiny, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    seqkit.train(**tiny, out=str(out), val_fraction=0.1)
    result = CliRunner().invoke(main, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    png = out / "perplexity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_plot_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "metrics.jsonl does not exist" in result.output
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "line 1 is not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "train_ppl": 9.0, "val_ppl": null}\n')
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "pip install 'seqkit[plot]'" in result.output
