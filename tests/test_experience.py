"""What a user sees: progress and plain logs, quiet runs, plots on every run, ablations, and the
rough edges a new user hit (wrapped logs, markup eaten, empty folders, relative paths, file modes)."""

from __future__ import annotations

import io
import re
import json
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

import seqkit
from seqkit.cli import main
from seqkit.console import RunPrinter, plugin_table
from seqkit.plugins import build_registry
from helpers import assert_clean_error

TINY = ["--max-tokens", "3000", "--hidden", "32", "--batch-size", "4", "--num-steps", "10", "--epochs", "2",
        "--predict-len", "10"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_logs_off_a_terminal_are_one_line_per_epoch_never_wrapped(corpora_dir, tmp_path):
    folder = tmp_path / ("a-folder-name-long-enough-to-wrap" * 2)
    result = invoke("run", *TINY, "--log-every", "1", "--out", folder)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("seqkit: 2 epochs of ") and "on timemachine with numpy" in lines[0]
    assert lines[1].endswith("parameters; writing to " + str(folder))
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("tok/s" in line for line in epoch_lines)
    assert max(len(line) for line in lines) > 80  # nothing was hard-wrapped at 80 columns


def test_quiet_prints_only_the_summary(corpora_dir, tmp_path):
    result = invoke("run", *TINY, "--quiet", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["epoch", "sample:", "Done."], lines


def test_the_live_display_shows_bars_eta_and_epoch_lines(corpora_dir, tiny):
    buffer = io.StringIO()
    printer = RunPrinter(out=Console(file=buffer, force_terminal=True, width=120))
    seqkit.train(**tiny, progress=printer, log_every=1)
    printer.done(None)
    text = buffer.getvalue()
    assert "ETA" in text and "ppl" in text and "tok/s" in text and "epoch 2/2" in text
    assert "train ppl" in text and "sample:" in text


def test_the_live_display_reads_the_running_sums_at_most_ten_times_a_second(monkeypatch):
    """Reading a state's loss sum may wait for a GPU: a step shown within 0.1 s of the last is skipped."""
    from seqkit import console as console_module

    printer = RunPrinter(out=Console(file=io.StringIO(), force_terminal=True, width=120))
    printer._on_start({"epochs": 1, "batches_per_epoch": 10, "corpus": "x", "backend": "numpy", "device": "cpu",
                       "impl": "fused", "dtype": "float32", "cell": "rnn-tanh", "hidden": 8, "optimizer": "sgd",
                       "lr": 1.0, "vocab_size": 5, "train_tokens": 100, "val_tokens": 0, "num_params": 10,
                       "out": None, "estimate_s": None, "resumed": None})
    reads = []

    class State:
        epoch, position, tokens, train_time, spent_s = 0, 1, 10, 0.1, 0.1

        @property
        def loss_sum(self):
            reads.append(1)
            return 20.0

    now = [1000.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: now[0])
    for _ in range(5):  # five minibatches within a few milliseconds
        printer._on_step(State())
        now[0] += 0.002
    assert len(reads) == 1
    now[0] += console_module.STEP_DISPLAY_INTERVAL_S
    printer._on_step(State())
    assert len(reads) == 2
    printer.close()


def test_under_a_time_budget_the_run_bar_counts_the_budget(corpora_dir, tiny):
    buffer = io.StringIO()
    printer = RunPrinter(out=Console(file=buffer, force_terminal=True, width=120))
    seqkit.train(**{**tiny, "epochs": 1000}, time_budget=0.02, progress=printer, log_every=1)
    printer.done(None)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())  # no terminal colours
    assert "time budget" in text and "/1 " in text  # 1.2 s, shown as whole seconds
    assert "up to 1000 epochs" in text and "for a time budget of 1 s" in text


def test_the_api_reports_by_default_and_is_silent_on_request(corpora_dir, tiny, capsys):
    seqkit.train(**tiny)
    assert "epoch    2/2" in capsys.readouterr().out
    seqkit.train(**tiny, progress=False)
    assert capsys.readouterr().out == ""


def test_every_run_writes_a_plot_and_plot_overlays_runs(corpora_dir, tiny, tmp_path):
    pytest.importorskip("matplotlib")
    for name in ("a", "b"):
        seqkit.train(**{**tiny, "seed": len(name)}, out=str(tmp_path / name), val_fraction=0.1, progress=False)
        assert (tmp_path / name / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    result = invoke("plot", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "both.png", "--label", "first",
                    "--label", "second")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "both.png").stat().st_size > 5000
    assert_clean_error(invoke("plot", tmp_path / "a", tmp_path / "b", "--label", "one"), "2 run folders")


def test_ablate_writes_a_table_and_an_overlay(corpora_dir, tmp_path):
    out = tmp_path / "ablation"
    result = invoke("ablate", "--epochs", "1", "--max-tokens", "2000", "--hidden", "16", "--out", out)
    assert result.exit_code == 0, result.output
    table = (out / "ablation.md").read_text()
    for variant in ("baseline", "relu", "no-clipping", "random", "no-detach", "embedding"):
        assert f"| {variant} |" in table
        assert json.loads((out / variant / "summary.json").read_text())["epochs_completed"] == 1
    configs = {v: json.loads((out / v / "summary.json").read_text())["config"] for v in ("relu", "no-detach")}
    assert configs["relu"]["cell"] == "rnn-relu" and configs["no-detach"]["no_detach"] is True
    assert_clean_error(invoke("ablate", "--epochs", "0", "--out", tmp_path / "bad"), "--epochs must be")


def test_ablate_reports_divergence_instead_of_stopping(corpora_dir, tmp_path):
    from seqkit.ablate import ablate

    rows = ablate(tmp_path / "hot", dict(max_tokens=2000, hidden=16, epochs=2, lr=1e6, clipper="none",
                                         checkpoint_every=0, val_fraction=0.1))
    by_name = {r["variant"]: r for r in rows}
    assert by_name["no-clipping"]["diverged"] and "loss became" in by_name["no-clipping"]["error"]
    assert "| no-clipping |" in (tmp_path / "hot" / "ablation.md").read_text()


def test_install_hints_keep_their_brackets():
    buffer = io.StringIO()
    from types import SimpleNamespace

    from seqkit import LazyComponent, hookimpl
    lazy = LazyComponent("ghost", "seqkit_ghost:Ghost", requires=("seqkit_ghost_framework",),
                         install_hint="pip install 'seqkit[ghost]'")
    plugin = SimpleNamespace(register_backends=hookimpl(lambda register: register(lazy)))
    registry = build_registry(extra_plugins=[("ghost", plugin)])
    import seqkit.console as console_module

    original = console_module.console
    console_module.console = Console(file=buffer, width=400)
    try:
        plugin_table(registry)
    finally:
        console_module.console = original
    assert "pip install 'seqkit[ghost]'" in buffer.getvalue()


def test_a_narrow_terminal_wraps_the_plugin_table_instead_of_cutting_it(monkeypatch):
    monkeypatch.setenv("SEQKIT_DISABLE_PLUGINS", "mxnet")
    registry = build_registry()
    import seqkit.console as console_module

    buffer = io.StringIO()
    monkeypatch.setattr(console_module, "console", Console(file=buffer, width=60))
    plugin_table(registry)
    text = buffer.getvalue()
    assert "…" not in text
    cells = "".join(line.split("│")[-2].strip() for line in text.splitlines() if line.count("│") == 6)
    assert "switched off by SEQKIT_DISABLE_PLUGINS".replace(" ", "") in cells.replace(" ", "")


@pytest.mark.parametrize("args, fragment", [
    (["--prefix", "xyz€"], "outside the vocabulary"),
    (["--backend", "nope"], "unknown backend"),
    (["--num-steps", "5000"], "needs more than"),
    (["--temperature", "0.3"], "--temperature is used by"),
    (["--corpus-file", "/nonexistent/file.txt"], "does not exist"),
])
def test_failed_runs_leave_no_folder(corpora_dir, tmp_path, args, fragment):
    out = tmp_path / "run"
    options = [a for a in TINY] if "--corpus-file" not in args else TINY[2:]
    assert_clean_error(invoke("run", *options, *args, "--out", out), fragment)
    assert not out.exists()
    assert not (tmp_path / "runs").exists() and not os.path.exists("runs")


def test_a_relative_corpus_file_is_stored_absolute(corpora_dir, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "text.txt").write_text("the quick brown fox jumps over the lazy dog. " * 80)
    monkeypatch.chdir(work)
    result = invoke("run", *TINY[2:], "--corpus-file", "../text.txt", "--out", "run")
    assert result.exit_code == 0, result.output
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert summary["config"]["corpus_file"] == str(tmp_path / "text.txt")
    assert summary["config"]["out"] == str(work / "run")
    monkeypatch.chdir(tmp_path)
    evaluated = invoke("evaluate", work / "run")
    assert evaluated.exit_code == 0, evaluated.output
    assert "text.txt" in evaluated.output


def test_every_run_file_gets_the_same_mode(corpora_dir, tiny, tmp_path):
    out = tmp_path / "run"
    seqkit.train(**tiny, out=str(out), progress=False)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
    assert modes["summary.json"] == modes["metrics.jsonl"], modes


def test_float64_runs_agree_across_backends_for_many_steps(corpora_dir, tiny):
    """The README's promise, precisely: in float64 every installed backend gives the same numbers
    over whole epochs; in float32 the first steps agree to float32 tolerance (then runs drift)."""
    registry = build_registry()
    names = [n for n in registry.names("backend") if registry.component("backend", n).unavailable_reason is None]
    options = dict(tiny, epochs=3, val_fraction=0.1, progress=False)
    runs = {n: seqkit.train(**options, backend=n, dtype="float64", impl="scratch") for n in names}
    base = runs["numpy"].history
    for name, run in runs.items():
        for a, b in zip(run.history, base):
            np.testing.assert_allclose([a["train_ppl"], a["val_ppl"]], [b["train_ppl"], b["val_ppl"]], rtol=1e-9,
                                       err_msg=name)
    first = {n: seqkit.train(**dict(options, epochs=1), backend=n).history[0]["train_ppl"] for n in names}
    np.testing.assert_allclose(list(first.values()), first["numpy"], rtol=1e-4)


def test_evaluate_without_text_scores_the_held_out_tail(corpora_dir, tiny, tmp_path):
    out = tmp_path / "run"
    run = seqkit.train(**tiny, val_fraction=0.2, out=str(out), progress=False)
    result = invoke("evaluate", out, "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    assert "held-out tail" in scored["text"]
    assert scored["ppl"] == pytest.approx(run.history[-1]["val_ppl"], rel=1e-5)
    plain = tmp_path / "plain"
    seqkit.train(**tiny, out=str(plain), progress=False)  # --max-tokens 3000, nothing held out
    result = invoke("evaluate", plain)
    assert result.exit_code == 0, result.output
    assert "training text (the run held nothing out)" in result.output
