"""Running sums that stay on the device: the fit loop reads the loss every
``backend.host_check_interval`` minibatches, and gives the same metrics and divergence errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqkit.engine import FitState, TrainSettings, evaluate, evaluation_passes, fit
from seqkit.errors import DivergedError
from seqkit.network import ModelSpec
from seqkit.plugins import build_registry
from seqkit.running import RunningSums
from seqkit_cells.rnn import RNNTanh
from seqkit_clippers.norm import NormClipper
from seqkit_samplers.partition import SequentialSampler

torch = pytest.importorskip("torch")

TOKENS = np.random.default_rng(0).integers(0, 9, size=1200)
HOST_READS = ("__float__", "__int__", "__bool__", "item")


def _torch_network(interval: int):
    backend = build_registry().create("backend", "torch", device="cpu", dtype="float32")
    backend.host_check_interval = interval
    spec = ModelSpec(RNNTanh(), vocab_size=9, hidden_size=16)
    params = {k: backend.asarray(v) for k, v in spec.init_params(np.random.default_rng(0)).items()}
    return backend.fused_network(spec), params


def _settings(epochs: int = 2) -> TrainSettings:
    return TrainSettings(epochs=epochs, batch_size=4, num_steps=6, lr=2.0)


@pytest.fixture
def host_reads(monkeypatch) -> dict:
    """Counts every read of a tensor's value on the host (what waits for a device)."""
    counts = {"reads": 0}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def _fit(interval: int, epochs: int = 2, **kwargs) -> tuple[list[dict], list[FitState], dict]:
    network, params = _torch_network(interval)
    steps: list[FitState] = []
    history = fit(network, params, TOKENS, SequentialSampler(), NormClipper(0.21), _settings(epochs),
                  np.random.default_rng(0), on_step=steps.append, **kwargs)
    return history, steps, params


def test_running_sums_add_numbers_and_read_them():
    backend = build_registry().create("backend", "numpy", device="cpu", dtype="float64")
    sums = RunningSums().add(backend, 2.0, 10, 0.5, True).add(backend, 1.0, 10, 1.5, False)
    assert sums.read() == (30.0, 2.0, 1)
    assert (sums.loss, sums.norm, sums.clipped) == (30.0, 2.0, 1)


def test_torch_sums_stay_tensors_until_read():
    backend = build_registry().create("backend", "torch", device="cpu", dtype="float32")
    loss, norm = torch.tensor(2.5), torch.tensor(0.25)
    sums = RunningSums().add(backend, loss, 4, norm, torch.tensor(True)).add(backend, loss, 4, norm, False)
    loss_total, norm_total, clipped_total = sums._values
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 for v in (loss_total, norm_total))
    assert isinstance(clipped_total, torch.Tensor)
    assert sums.read() == (20.0, 0.5, 1)


def test_torch_clip_returns_device_values_without_reading_them(host_reads):
    backend = build_registry().create("backend", "torch", device="cpu", dtype="float32")
    backend.host_check_interval = 25  # as on CUDA
    grads = {"W": torch.full((3, 4), 2.0), "b": torch.full((4,), 2.0)}
    out, norm, clipped = backend.clip_by_global_norm(grads, 1.0)
    assert host_reads["reads"] == 0
    assert isinstance(norm, torch.Tensor) and isinstance(clipped, torch.Tensor)
    assert float(norm) == pytest.approx(2.0 * math.sqrt(16)) and bool(clipped)
    total = math.sqrt(sum(float((g ** 2).sum()) for g in out.values()))
    assert total == pytest.approx(1.0, rel=1e-6)
    untouched = {"W": torch.full((3, 4), 0.01)}
    out, _, clipped = backend.clip_by_global_norm(untouched, 1.0)
    assert not bool(clipped) and torch.equal(out["W"], torch.full((3, 4), 0.01))  # times exactly 1


def test_torch_clip_on_the_host_where_every_minibatch_is_read():
    backend = build_registry().create("backend", "torch", device="cpu", dtype="float32")
    _, norm, clipped = backend.clip_by_global_norm({"W": torch.full((3, 4), 2.0)}, 1.0)
    assert isinstance(norm, float) and clipped is True


def test_fewer_host_reads_same_metrics(host_reads):
    one, steps_one, params_one = _fit(1)
    every_minibatch = host_reads["reads"]
    host_reads["reads"] = 0
    four, steps_four, params_four = _fit(4)
    minibatches = len(steps_four)
    assert every_minibatch >= minibatches  # the loss was read after each minibatch
    # a read per window of four, and the epoch rows' sums (three each)
    assert host_reads["reads"] <= math.ceil(minibatches / 4) + 2 * 3 + 2
    for a, b in zip(one, four):
        for key in ("train_ppl", "grad_norm", "clipped_fraction"):
            assert a[key] == b[key], key
    assert 0 < one[0]["clipped_fraction"] < 1  # both branches of the clipper ran
    for name in params_one:
        assert torch.equal(params_one[name], params_four[name])
    assert steps_four[-1].loss_sum == steps_one[-1].loss_sum


def test_a_diverging_minibatch_is_caught_in_its_window(monkeypatch):
    for interval, expected in ((1, "minibatch 6 "), (4, "minibatches 5-8 ")):
        network, params = _torch_network(interval)
        real = network.loss_and_grad_deferred
        calls = {"n": 0}

        def failing(*args, _real=real, **kwargs):
            calls["n"] += 1
            loss, grads, final = _real(*args, **kwargs)
            return (loss * float("nan") if calls["n"] == 6 else loss), grads, final

        monkeypatch.setattr(network, "loss_and_grad_deferred", failing)
        with pytest.raises(DivergedError, match=f"loss became nan at epoch 1, {expected}"):
            fit(network, params, TOKENS, SequentialSampler(), NormClipper(0.21), _settings(),
                np.random.default_rng(0))
        assert calls["n"] == (6 if interval == 1 else 8)


def test_an_interrupt_reports_an_unread_divergence_instead_of_saving(monkeypatch):
    network, params = _torch_network(25)
    real = network.loss_and_grad_deferred

    def failing(*args, **kwargs):
        loss, grads, final = real(*args, **kwargs)
        return loss * float("nan"), grads, final

    monkeypatch.setattr(network, "loss_and_grad_deferred", failing)
    saved = []

    def stop(state):
        if state.position == 3:
            raise KeyboardInterrupt

    with pytest.raises(DivergedError, match="minibatches 1-3"):
        fit(network, params, TOKENS, SequentialSampler(), NormClipper(0.21), _settings(), np.random.default_rng(0),
            on_step=stop, on_interrupt=saved.append)
    assert not saved


def test_evaluation_reads_the_device_once_per_pass(host_reads):
    network, params = _torch_network(1)
    ids = TOKENS[:700]
    result = evaluate(network, params, ids, batch_size=4, num_steps=6, warmup=20)
    windows = math.ceil(20 / 6) + math.ceil((700 - 1 - 20) / 4 / 6)
    assert host_reads["reads"] <= 3 < windows
    assert result["tokens"] == len(ids) - 1 and math.isfinite(result["loss"])
    total = 0.0  # the same figure window by window, each loss read on the host
    for context, segments in evaluation_passes(ids, 4, 20):
        state = network.init_state(len(segments))
        for tokens, scored in ((context, False), (segments, True)):
            if tokens is None:
                continue
            xs, ys = tokens[:, :-1], tokens[:, 1:]
            for start in range(0, xs.shape[1], 6):
                loss, state = network.loss(params, xs[:, start:start + 6], ys[:, start:start + 6], state)
                total += loss * ys[:, start:start + 6].size if scored else 0.0
    assert result["loss"] == pytest.approx(total / (len(ids) - 1), rel=1e-9)
