"""--time-budget: training stops when the wall-clock budget is spent, the schedule spreads over the
budget, and the clock is checkpointed so a resumed run continues it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import seqkit
import seqkit.api
import seqkit.engine
from seqkit.cli import main
from seqkit.engine import TrainSettings
from seqkit_schedules.rates import Cosine

OPTIONS = dict(max_tokens=3000, hidden=16, batch_size=4, num_steps=10, epochs=40, val_fraction=0.1,
               schedule="cosine", progress=False, checkpoint_every=0)
TICK = 0.05  # seconds each reading of the fake clock advances


@pytest.fixture
def ticking_clock(monkeypatch):
    """A `seqkit.engine.Clock` that advances a fixed step per reading: the same run every time."""

    class TickingClock(seqkit.engine.Clock):
        def __init__(self, spent_s: float = 0.0) -> None:
            super().__init__(spent_s)
            self.readings = 0

        def elapsed(self) -> float:
            self.readings += 1
            return self.spent_s + self.readings * TICK

    monkeypatch.setattr(seqkit.engine, "Clock", TickingClock)
    monkeypatch.setattr(seqkit.api, "Clock", TickingClock)  # the run's clock is made in api


def test_expected_steps_follow_the_pace_within_the_plan():
    settings = TrainSettings(epochs=10, batch_size=1, num_steps=1, lr=1.0, steps_per_epoch=100, time_budget_s=60)
    assert settings.expected_steps(0, 0.0) == 1000  # no pace yet: the plan
    assert settings.expected_steps(50, 6.0) == 500  # 50 updates in 6 s: 500 in 60 s
    assert settings.expected_steps(50, 0.6) == 1000  # faster than the plan: --epochs still caps
    assert settings.expected_steps(50, 120.0) == 51
    assert not settings.budget_spent(59.9) and settings.budget_spent(60.0)
    plain = TrainSettings(epochs=10, batch_size=1, num_steps=1, lr=1.0, steps_per_epoch=100)
    assert plain.expected_steps(50, 6.0) == 1000 and not plain.budget_spent(1e9)
    cosine = TrainSettings(epochs=10, batch_size=1, num_steps=1, lr=1.0, steps_per_epoch=100, time_budget_s=60,
                           schedule=Cosine(lr_min=0.1))
    assert cosine.lr_at(1, 250, 30.0) == pytest.approx(0.55, rel=1e-2)  # half the budget: half-way down


def test_the_budget_stops_training_and_the_schedule_ends_near_its_floor(corpora_dir, tmp_path, ticking_clock):
    run = seqkit.train(**OPTIONS, time_budget=0.5, lr_min=0.05, out=str(tmp_path / "run"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "budget-spent"
    assert 1 < len(run.history) < OPTIONS["epochs"]
    assert run.history[-1]["budget_spent"] and not any(r.get("budget_spent") for r in run.history[:-1])
    assert run.history[-1]["elapsed_s"] == pytest.approx(30.0, abs=0.5)
    lrs = [r["lr"] for r in run.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * lrs[0]
    assert run.history[-1]["val_ppl"] is not None  # the cut-short epoch is evaluated too


def test_a_resumed_run_continues_the_clock(corpora_dir, tmp_path, ticking_clock):
    out = tmp_path / "run"
    first = seqkit.train(**OPTIONS, time_budget=0.25, out=str(out))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["training"]["spent_s"] == pytest.approx(first.history[-1]["elapsed_s"])
    assert state["training"]["epoch"] == len(first.history) and not state["training"]["complete"]
    resumed = seqkit.train(resume=out, time_budget=0.5, progress=False)
    assert len(resumed.history) > len(first.history)
    assert resumed.history[:len(first.history)] == first.history
    assert resumed.history[len(first.history)]["elapsed_s"] > first.history[-1]["elapsed_s"]
    assert resumed.history[-1]["elapsed_s"] == pytest.approx(30.0, abs=0.5)


def test_a_spent_budget_trains_nothing_more(corpora_dir, tmp_path, ticking_clock):
    out = tmp_path / "run"
    first = seqkit.train(**OPTIONS, time_budget=0.25, out=str(out))
    again = seqkit.train(resume=out, progress=False)
    assert again.history == first.history


def test_the_plan_line_names_the_budget(corpora_dir, tmp_path):
    result = CliRunner().invoke(main, ["run", "--max-tokens", "3000", "--hidden", "16", "--epochs", "500",
                                       "--time-budget", "0.01", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "up to 500 epochs" in first and "time budget of under a second" in first, first


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_an_invalid_budget_is_a_clear_error(value):
    result = CliRunner().invoke(main, ["run", "--time-budget", value])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "time-budget" in result.output
