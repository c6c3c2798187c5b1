"""Optimizers: SGD and Adam, the same numbers on every backend, checkpointed slots, bad values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqkit.api import configure
from click.testing import CliRunner

import seqkit
from seqkit.backend import Backend
from seqkit.cli import main
from seqkit.errors import ConfigError, PluginError
from seqkit.optimizer import OptimizerState
from seqkit.plugins import build_registry
from seqkit.testing.registry import installed_backends
from seqkit_optimizers.updates import SGD, Adam
from helpers import interrupted_then_resumed

SHAPES = {"W": (4, 3), "b": (3,)}


def reference_adam(params, grads_per_step, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam written out in float64, straight from the paper (with bias correction)."""
    params = {k: v.astype(np.float64).copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for k, g in grads.items():
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            params[k] = params[k] - lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
    return params


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = [{k: rng.normal(size=s) for k, s in SHAPES.items()} for _ in range(4)]
    return params, grads


def backends():
    registry = build_registry()
    return [registry.create("backend", n, device="cpu", dtype="float64") for n in installed_backends(registry)]


@pytest.mark.parametrize("backend", backends(), ids=lambda b: b.name)
@pytest.mark.parametrize("native", [True, False], ids=["native", "default"])
def test_adam_matches_the_reference(backend, native):
    params0, grads = problem()
    params = {k: backend.asarray(v) for k, v in params0.items()}
    adam = Adam(beta1=0.8, beta2=0.99, eps=1e-6)
    state = adam.init_state(backend, params)
    if not native:  # the base class's NumPy route, used by backends that do not override it
        backend.adam_update = Backend.adam_update.__get__(backend)
    for g in grads:
        adam.update(backend, params, {k: backend.asarray(v) for k, v in g.items()}, 0.05, state)
    expected = reference_adam(params0, grads, 0.05, 0.8, 0.99, 1e-6)
    assert state.step == 4
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(params[k]), expected[k], rtol=1e-10, atol=1e-12)


def test_sgd_counts_steps_and_matches_the_lesson():
    backend = backends()[0]
    params0, grads = problem()
    params = {k: backend.asarray(v) for k, v in params0.items()}
    state = SGD().init_state(backend, params)
    assert state.slots == {}
    SGD().update(backend, params, grads[0], 0.5, state)
    assert state.step == 1
    np.testing.assert_allclose(params["W"], params0["W"] - 0.5 * grads[0]["W"])


def test_bad_hyper_parameters():
    for kwargs, flag in (({"beta1": 1.0}, "--beta1"), ({"beta2": -0.1}, "--beta2"), ({"eps": 0}, "--eps")):
        with pytest.raises(ConfigError, match=flag):
            build_registry().create("optimizer", "adam", **kwargs)
        with pytest.raises(ConfigError, match=flag):
            configure({"optimizer": "adam", **kwargs})
    with pytest.raises(PluginError, match="choose one of: adam, adamw, sgd"):
        build_registry().get("optimizer", "rmsprop")


@pytest.mark.parametrize("backend, impl", [(name, impl) for name in build_registry().names("backend")
                                           for impl in ("scratch", "fused") if (name, impl) != ("numpy", "fused")])
def test_adam_training_gives_the_same_numbers_on_every_backend(corpora_dir, tiny, backend, impl):
    """Against the default run (NumPy, fused)."""
    if build_registry().component("backend", backend).unavailable_reason:
        pytest.skip(build_registry().component("backend", backend).unavailable_reason)
    options = {**tiny, "optimizer": "adam", "lr": 0.01, "device": "cpu"}
    reference = seqkit.train(**options)
    other = seqkit.train(**options, backend=backend, impl=impl)
    for a, b in zip(other.history, reference.history):
        np.testing.assert_allclose(a["train_ppl"], b["train_ppl"], rtol=1e-4)
    assert other.predict(length=20) == reference.predict(length=20)


def test_adam_beats_sgd_at_the_lesson_budget_on_held_out_shakespeare(corpora_dir):
    options = dict(corpus="shakespeare", max_tokens=30000, hidden=64, batch_size=16, num_steps=25, epochs=3,
                   init="small-normal", seed=0)
    sgd = seqkit.train(**options)
    adam = seqkit.train(**options, optimizer="adam", lr=0.01)
    assert adam.history[-1]["val_ppl"] < 0.8 * sgd.history[-1]["val_ppl"]


def test_checkpoint_holds_the_slots_and_resume_restores_them(corpora_dir, tiny, tmp_path):
    out = tmp_path / "run"
    seqkit.train(**tiny, optimizer="adam", lr=0.01, out=str(out))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["training"]["optimizer"]["name"] == "adam"
    assert state["training"]["optimizer"]["slots"] == ["m", "v"]
    assert "opt.m.W_hh" in state["model"]["arrays"] and "opt.v.b_q" in state["model"]["arrays"]
    model = seqkit.load(out)
    assert model.opt_state.step == state["training"]["optimizer"]["step"] > 0
    assert set(model.opt_state.slots["m"]) == set(model.params)
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--optimizer", "sgd"])
    assert result.exit_code != 0 and "--optimizer sgd (checkpoint: adam)" in result.output


def test_cli_adam_run(corpora_dir, tmp_path):
    result = CliRunner().invoke(main, ["run", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4",
                                       "--num-steps", "10", "--epochs", "1", "--optimizer", "adam", "--lr", "0.01",
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(main, ["run", "--optimizer", "adam", "--beta2", "1.5"])
    assert bad.exit_code != 0 and "--beta2 must be >= 0 and < 1" in bad.output


def test_optimizer_state_is_empty_by_default():
    assert OptimizerState() == OptimizerState({}, 0)


def reference_momentum(params, grads_per_step, lr, momentum, nesterov=False, weight_decay=0.0):
    """PyTorch's SGD with momentum written out in float64."""
    params = {k: v.astype(np.float64).copy() for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    for grads in grads_per_step:
        for k, g in grads.items():
            g = g + weight_decay * params[k]
            velocity[k] = momentum * velocity[k] + g
            params[k] = params[k] - lr * (g + momentum * velocity[k] if nesterov else velocity[k])
    return params


@pytest.mark.parametrize("backend", backends(), ids=lambda b: b.name)
@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy-ball", "nesterov"])
def test_sgd_momentum_matches_the_reference_on_every_backend(backend, nesterov):
    params0, grads = problem(1)
    params = {k: backend.asarray(v) for k, v in params0.items()}
    sgd = build_registry().create("optimizer", "sgd", momentum=0.9, nesterov=nesterov, weight_decay=0.01)
    state = sgd.init_state(backend, params)
    assert sorted(state.slots) == ["velocity"]
    for g in grads:
        sgd.update(backend, params, {k: backend.asarray(v) for k, v in g.items()}, 0.1, state)
    expected = reference_momentum(params0, grads, 0.1, 0.9, nesterov, 0.01)
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(params[k]), expected[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", backends(), ids=lambda b: b.name)
def test_adamw_decays_decoupled_from_the_gradient(backend):
    params0, grads = problem(2)
    params = {k: backend.asarray(v) for k, v in params0.items()}
    adamw = build_registry().create("optimizer", "adamw", weight_decay=0.1)
    state = adamw.init_state(backend, params)
    for g in grads:
        adamw.update(backend, params, {k: backend.asarray(v) for k, v in g.items()}, 0.01, state)
    expected = {k: v.copy() for k, v in params0.items()}
    m = {k: np.zeros_like(v) for k, v in expected.items()}
    v2 = {k: np.zeros_like(v) for k, v in expected.items()}
    for t, g in enumerate(grads, start=1):
        for k in expected:
            expected[k] = expected[k] - 0.01 * 0.1 * expected[k]
            m[k] = 0.9 * m[k] + 0.1 * g[k]
            v2[k] = 0.999 * v2[k] + 0.001 * g[k] ** 2
            expected[k] -= 0.01 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(params[k]), expected[k], rtol=1e-10, atol=1e-12)


def test_nesterov_needs_momentum():
    with pytest.raises(ConfigError, match="--nesterov needs --momentum > 0"):
        build_registry().create("optimizer", "sgd", nesterov=True)


def test_momentum_training_resumes_exactly_and_agrees_across_backends(corpora_dir, tiny, tmp_path):
    options = {**tiny, "epochs": 3, "momentum": 0.5, "lr": 0.2, "dtype": "float64", "progress": False}
    whole = seqkit.train(**options)
    resumed = interrupted_then_resumed(options, tmp_path / "run", stop_at=5)
    assert [r["train_ppl"] for r in resumed.history] == [r["train_ppl"] for r in whole.history]
    registry = build_registry()
    for name in registry.names("backend"):
        if registry.component("backend", name).unavailable_reason is None:
            other = seqkit.train(**options, backend=name, impl="scratch")
            np.testing.assert_allclose([r["train_ppl"] for r in other.history],
                                       [r["train_ppl"] for r in whole.history], rtol=1e-9, err_msg=name)
