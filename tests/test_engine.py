"""The engine's loops: state policy per sampler, --no-detach, lr schedule, divergence, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqkit.engine import TrainSettings, evaluate, fit, predict
from seqkit.errors import DivergedError
from seqkit.network import GenericNetwork, ModelSpec
from seqkit.plugins import build_registry
from seqkit_cells.rnn import RNNTanh
from seqkit_clippers.norm import NoClipper, NormClipper
from seqkit_decoders.sampling import GreedyDecoder
from seqkit_samplers.partition import RandomSampler, SequentialSampler

TOKENS = np.random.default_rng(0).integers(0, 7, size=400)


class SpyNetwork(GenericNetwork):
    """Records the state and shapes each minibatch starts from; can fake a loss."""

    def __init__(self, backend, spec, fake_loss=None):
        super().__init__(backend, spec)
        self.calls = []
        self.fake_loss = fake_loss

    def loss_and_grad(self, params, X, Y, state, loss_from=0):
        loss, grads, final = super().loss_and_grad(params, X, Y, state, loss_from)
        self.calls.append({"X": X.copy(), "state": np.array(state[0]), "final": np.array(final[0]),
                           "loss_from": loss_from})
        return (self.fake_loss if self.fake_loss is not None else loss), grads, final


@pytest.fixture
def numpy_backend():
    return build_registry().create("backend", "numpy", device="cpu", dtype="float64")


def make(backend, **kwargs):
    spec = ModelSpec(RNNTanh(), vocab_size=7, hidden_size=6)
    params = {k: backend.asarray(v) for k, v in spec.init_params(np.random.default_rng(0)).items()}
    return SpyNetwork(backend, spec, **kwargs), params


def settings(**kwargs):
    return TrainSettings(**{"epochs": 1, "batch_size": 3, "num_steps": 5, "lr": 1.0, **kwargs})


def test_sequential_carries_the_previous_final_state(numpy_backend):
    net, params = make(numpy_backend)
    fit(net, params, TOKENS, SequentialSampler(), NoClipper(), settings(), np.random.default_rng(0))
    assert len(net.calls) > 3
    assert not net.calls[0]["state"].any()
    for prev, cur in zip(net.calls, net.calls[1:]):
        np.testing.assert_array_equal(cur["state"], prev["final"])
        assert cur["loss_from"] == 0


def test_random_sampler_starts_every_minibatch_from_zero(numpy_backend):
    net, params = make(numpy_backend)
    fit(net, params, TOKENS, RandomSampler(), NoClipper(), settings(), np.random.default_rng(0))
    assert all(not call["state"].any() for call in net.calls)


def test_no_detach_reruns_from_the_epoch_start_and_scores_only_the_new_steps(numpy_backend):
    net, params = make(numpy_backend)
    fit(net, params, TOKENS, SequentialSampler(), NoClipper(), settings(detach=False), np.random.default_rng(0))
    for k, call in enumerate(net.calls):
        assert call["loss_from"] == 5 * k
        assert call["X"].shape == (3, 5 * (k + 1))
        assert not call["state"].any()


def test_no_detach_gradient_reaches_back_into_the_previous_minibatch(numpy_backend):
    net, params = make(numpy_backend)
    X = TOKENS[:20].reshape(2, 10)
    Y = TOKENS[1:21].reshape(2, 10)
    state = net.init_state(2)
    _, full, _ = net.loss_and_grad(params, X, Y, state, loss_from=5)
    _, carried, _ = net.backend.value_and_grad(
        net._loss_fn(X[:, 5:], Y[:, 5:], net.loss(params, X[:, :5], Y[:, :5], state)[1], 0), params)
    # Same loss terms, but detaching the carried state drops the gradient through steps 0..4.
    assert not np.allclose(full["W_hh"], carried["W_hh"])


def test_schedules_give_the_rate_of_every_update():
    from seqkit_schedules.rates import Constant, Cosine, StepDecay

    s = settings(lr=1.0, schedule=StepDecay(lr_decay=0.5, lr_decay_every=100))
    assert [s.lr_at(e) for e in (1, 100, 101, 201)] == [1.0, 1.0, 0.5, 0.25]
    assert settings(lr=2.0).lr_at(1000) == 2.0
    cosine = settings(lr=1.0, epochs=2, steps_per_epoch=5, schedule=Cosine(lr_min=0.1))
    rates = [cosine.lr_at(1 + step // 5, step) for step in range(10)]
    assert rates[0] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(rates, rates[1:]))  # it moves within an epoch, every minibatch
    warm = settings(lr=1.0, schedule=Constant(warmup_steps=4))
    assert [warm.lr_at(1, step) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_the_schedule_steps_per_minibatch_in_training(numpy_backend):
    from seqkit_schedules.rates import Cosine

    net, params = make(numpy_backend)
    rows = fit(net, params, TOKENS, SequentialSampler(), NoClipper(),
               settings(epochs=2, steps_per_epoch=26, schedule=Cosine(lr_min=0.0)), np.random.default_rng(0))
    assert rows[0]["lr"] > rows[1]["lr"] >= 0.0



def test_metrics_rows(numpy_backend):
    net, params = make(numpy_backend)
    rows = fit(net, params, TOKENS[:300], SequentialSampler(), NormClipper(clip_theta=1e-3), settings(epochs=2),
               np.random.default_rng(0), val_ids=TOKENS[300:])
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert set(row) == {"epoch", "train_ppl", "val_ppl", "val_bpc", "lr", "grad_norm", "clipped_fraction",
                            "tokens_per_s", "elapsed_s"}
        assert row["clipped_fraction"] == 1.0  # theta 1e-3 clips every step
        assert row["val_bpc"] == pytest.approx(math.log2(row["val_ppl"]))


def test_a_non_finite_loss_stops_with_advice(numpy_backend):
    net, params = make(numpy_backend, fake_loss=float("nan"))
    with pytest.raises(DivergedError, match="lower --lr"):
        fit(net, params, TOKENS, SequentialSampler(), NoClipper(), settings(), np.random.default_rng(0))


def test_evaluate_uniform_model_has_perplexity_vocab_size(numpy_backend):
    net, params = make(numpy_backend)
    zeros = {k: numpy_backend.asarray(np.zeros(np.shape(v))) for k, v in params.items()}
    result = evaluate(net, zeros, TOKENS, batch_size=4, num_steps=7)
    assert result["ppl"] == pytest.approx(7.0)
    assert result["bits_per_token"] == pytest.approx(math.log2(7))
    assert result["tokens"] == 399  # every token but the first, once


def test_evaluation_does_not_move_with_the_batch_size(tmp_path):
    import seqkit

    text = tmp_path / "refrain.txt"  # a refrain only a model that remembers the line predicts well
    text.write_text("row row row your boat gently down the stream merrily merrily life is but a dream " * 90)
    run = seqkit.train(corpus_file=str(text), hidden=64, epochs=12, val_fraction=0.3, optimizer="adam", lr=0.01,
                       batch_size=16, progress=False)
    val = seqkit.api.load_dataset(run.config, seqkit.api.create(run.registry, run.config, "corpus")).val_ids
    one = evaluate(run.network, run.params, val, batch_size=1, num_steps=35, warmup=10**6)  # one stream
    for batch in (1, 4, 32, 512):
        result = evaluate(run.network, run.params, val, batch_size=batch, num_steps=35)
        assert result["tokens"] == len(val) - 1
        assert result["loss"] == pytest.approx(one["loss"], rel=2e-3), batch
    cold = evaluate(run.network, run.params, val, batch_size=512, num_steps=35, warmup=1)  # barely warmed up
    assert abs(cold["loss"] - one["loss"]) > 1e-2 * one["loss"]


def test_evaluation_with_a_long_warmup_is_one_stream_exactly(numpy_backend):
    net, params = make(numpy_backend)
    ids = np.random.default_rng(2).integers(0, 7, size=200)
    state = net.init_state(1)
    total = 0.0
    for start in range(0, 199, 7):
        loss, state = net.loss(params, ids[None, start:start + 7][:, :199 - start],
                               ids[None, start + 1:start + 8][:, :199 - start], state)
        total += loss * min(7, 199 - start)
    assert evaluate(net, params, ids, batch_size=16, num_steps=7, warmup=500)["loss"] == pytest.approx(total / 199)


def test_predict_warms_up_then_decodes(numpy_backend):
    net, params = make(numpy_backend)
    out = predict(net, params, np.array([1, 2, 3]), 6, GreedyDecoder(), np.random.default_rng(0))
    assert len(out) == 6 and all(0 <= t < 7 for t in out)
    assert out == predict(net, params, np.array([1, 2, 3]), 6, GreedyDecoder(), np.random.default_rng(1))
