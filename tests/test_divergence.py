"""Divergence in the middle of a run keeps the last good checkpoint, the metrics so far, and frees
the run folder."""

from __future__ import annotations

import json

import pytest

from seqkit.plot import read_metrics

import seqkit
import seqkit.api
from seqkit.checkpoint import read_checkpoint
from seqkit.errors import DivergedError
from seqkit.runlock import LOCK_FILE


def _network_failing_after(calls_before_nan: int | None, counter: dict):
    """A `make_network` whose loss turns NaN after ``calls_before_nan`` minibatches (None: never)."""
    real = seqkit.api.make_network

    def make(backend, spec, impl, dropout=0.0):
        network = real(backend, spec, impl, dropout)
        inner = network.loss_and_grad

        def loss_and_grad(*args, **kwargs):
            counter["calls"] = counter.get("calls", 0) + 1
            loss, grads, final = inner(*args, **kwargs)
            if calls_before_nan is not None and counter["calls"] > calls_before_nan:
                loss = float("nan")
            return loss, grads, final

        network.loss_and_grad = loss_and_grad
        return network

    return make


def test_divergence_after_a_checkpoint_keeps_it(corpora_dir, tiny, tmp_path, monkeypatch):
    real = seqkit.api.make_network
    counted: dict = {}
    monkeypatch.setattr(seqkit.api, "make_network", _network_failing_after(None, counted))
    seqkit.train(**{**tiny, "epochs": 1})
    one_epoch = counted.pop("calls")
    seqkit.train(**{**tiny, "epochs": 2})
    per_epoch = counted["calls"] - one_epoch
    before_training = one_epoch - per_epoch  # the time-estimate probe's passes
    monkeypatch.setattr(seqkit.api, "make_network", _network_failing_after(before_training + 2 * per_epoch + 1, {}))
    out = tmp_path / "run"
    with pytest.raises(DivergedError, match=r"loss became nan at epoch 3, minibatch 2 .*metrics so far are in"):
        seqkit.train(**{**tiny, "epochs": 5, "checkpoint_every": 1}, out=str(out))
    monkeypatch.setattr(seqkit.api, "make_network", real)
    assert read_checkpoint(out).epoch == 2  # the last good checkpoint
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 2
    assert not (out / LOCK_FILE).exists()
    assert seqkit.train(resume=str(out), epochs=3).history[-1]["epoch"] == 3
