"""Model selection: --eval-every, the best checkpoint beside the latest, --early-stop, exact resume."""

from __future__ import annotations

import json

import pytest

import seqkit
from seqkit.plot import read_metrics
from seqkit.selection import Selection
from helpers import interrupted_then_resumed


def test_selection_tracks_the_best_and_the_patience():
    selection = Selection()
    assert selection.observe(2.0, 1, 10) and selection.observe(1.5, 1, 20)
    assert not selection.observe(1.7, 2, 30) and not selection.observe(1.6, 2, 40)
    assert (selection.best_loss, selection.best_step, selection.since_best, selection.evaluations) == (1.5, 20, 2, 4)
    assert selection.patience_spent(2) and not selection.patience_spent(3) and not selection.patience_spent(0)
    assert Selection.from_dict(selection.as_dict()) == selection
    assert Selection.from_dict({"best_loss": "x"}) == Selection()


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_a_loss_that_is_not_finite_is_never_the_best(loss):
    first = Selection()
    assert not first.observe(loss, 1, 10) and first.best_loss is None and first.since_best == 1
    later = Selection()
    later.observe(2.0, 1, 10)
    assert not later.observe(loss, 1, 20) and later.best_loss == 2.0


def test_eval_every_keeps_the_best_checkpoint(corpora_dir, tiny, tmp_path):
    out = tmp_path / "run"
    run = seqkit.train(**{**tiny, "epochs": 3}, val_fraction=0.2, eval_every=20, out=str(out), progress=False)
    rows = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert len(rows) == run.selection.evaluations >= 3
    best = min(rows, key=lambda r: r["val_loss"])
    assert best["best"] and run.selection.best_loss == best["val_loss"]
    state = json.loads((out / "checkpoint-best" / "state.json").read_text())
    assert state["selection"]["best_loss"] == best["val_loss"]
    model = seqkit.load(out / "checkpoint-best")
    ids, _ = model.held_out()
    assert model.evaluate_ids(ids)["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_early_stop_ends_the_run_when_validation_stops_improving(tmp_path):
    text = tmp_path / "drift.txt"  # the held-out tail reverses the training order: learning it hurts there
    text.write_text("abcd" * 2000 + "dcba" * 500)
    out = tmp_path / "run"
    run = seqkit.train(corpus_file=str(text), val_fraction=0.2, hidden=16, batch_size=8, num_steps=10, epochs=50,
                       lr=2.0, early_stop=2, out=str(out), progress=False)
    assert len(run.history) < 50 and run.selection.since_best == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "early-stopped" and summary["epochs_completed"] == len(run.history)
    assert len(read_metrics(out)) == len(run.history)


def test_resume_keeps_the_selection(corpora_dir, tiny, tmp_path):
    options = {**tiny, "epochs": 3, "val_fraction": 0.2, "eval_every": 15, "progress": False}
    whole = seqkit.train(**options)
    resumed = interrupted_then_resumed(options, tmp_path / "run", stop_at=40)
    assert resumed.selection == whole.selection
