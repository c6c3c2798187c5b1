"""Dropout: seeded masks, the same numbers on every backend and implementation, off at evaluation,
exact resume, and a clear refusal where a network cannot apply it."""

from __future__ import annotations

import numpy as np
import pytest

import seqkit
from seqkit.api import make_network
from seqkit.dropout import DropoutMasks, draw_masks
from seqkit.errors import ConfigError
from seqkit.network import GenericNetwork, ModelSpec
from seqkit.plugins import build_registry
from seqkit_cells.rnn import RNNRelu, RNNTanh
from helpers import interrupted_then_resumed

V, H, E, B, T = 11, 24, 6, 3, 7
RATE = 0.3


def installed_backends() -> list[str]:
    registry = build_registry()
    return [n for n in registry.names("backend") if registry.component("backend", n).unavailable_reason is None]


def backend(name: str, dtype: str = "float64"):
    return build_registry().create("backend", name, device="cpu", dtype=dtype)


def networks(name: str, spec: ModelSpec):
    """Every network the backend has for ``spec``: the generic one, its fused one, and (torch)
    the nn.RNN network CUDA uses by default."""
    be = backend(name)
    found = [GenericNetwork(be, spec)]
    fused = be.fused_network(spec)
    if fused is not None:
        found.append(fused)
    if name == "torch":
        from seqkit_torch.module import ModuleRNN

        found.append(ModuleRNN(be, spec))
    return found


def problem(embedding: int, cell=RNNTanh):
    rng = np.random.default_rng(1)
    spec = ModelSpec(cell(), V, H, embedding)
    params = {k: v * 30 for k, v in spec.init_params(rng).items()}  # bold enough to use every unit
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = rng.normal(0, 0.5, (B, H))
    return spec, params, X, Y, state


def run(network, params, X, Y, state, masks, loss_from=0):
    be = network.backend
    native = {k: be.asarray(v) for k, v in params.items()}
    extra = {"masks": masks} if masks is not None else {}
    loss, grads, final = network.loss_and_grad(native, X, Y, (be.asarray(state),), loss_from, **extra)
    return loss, {k: be.to_numpy(g) for k, g in grads.items()}, be.to_numpy(final[0])


def test_masks_are_a_function_of_seed_and_update():
    a = draw_masks(RATE, 0, 5, B, T, H, E)
    assert a.outputs.shape == (T, B, H) and a.inputs.shape == (T, B, E)
    assert np.array_equal(a.outputs, draw_masks(RATE, 0, 5, B, T, H, E).outputs)
    assert not np.array_equal(a.outputs, draw_masks(RATE, 0, 6, B, T, H, E).outputs)
    assert not np.array_equal(a.outputs, draw_masks(RATE, 1, 5, B, T, H, E).outputs)
    assert draw_masks(0.0, 0, 5, B, T, H, E) is None
    assert draw_masks(RATE, 0, 0, B, T, H, 0).inputs is None
    big = draw_masks(RATE, 0, 0, 64, 64, 512, 0)
    assert abs(1 - big.outputs.mean() - RATE) < 0.005
    scaled = big.scaled("outputs", "float32")
    assert scaled.dtype == np.float32 and set(np.unique(scaled)) == {0.0, np.float32(1 / 0.7)}
    assert np.array_equal(a.rows(slice(1, 3)).outputs, a.outputs[:, 1:3])


@pytest.mark.parametrize("embedding", [0, E], ids=["one-hot", "embedding"])
@pytest.mark.parametrize("cell", [RNNTanh, RNNRelu], ids=["tanh", "relu"])
@pytest.mark.parametrize("loss_from", [0, 3])
@pytest.mark.parametrize("name", installed_backends())
def test_every_network_drops_the_same_units(name, cell, embedding, loss_from):
    spec, params, X, Y, state = problem(embedding, cell)
    masks = draw_masks(RATE, 0, 3, B, T, H, embedding)
    ref_loss, ref_grads, ref_final = run(GenericNetwork(backend("numpy"), spec), params, X, Y, state, masks, loss_from)
    plain_loss, _, _ = run(GenericNetwork(backend("numpy"), spec), params, X, Y, state, None, loss_from)
    assert abs(ref_loss - plain_loss) > 1e-3  # the masks change the loss
    for network in networks(name, spec):
        assert network.supports_dropout, type(network)
        loss, grads, final = run(network, params, X, Y, state, masks, loss_from)
        what = f"{name} {type(network).__name__}"
        # MXNet's fused relu operator is up to ~1e-7 from NumPy in float64, with or without dropout
        assert loss == pytest.approx(ref_loss, rel=2e-8), what
        assert grads.keys() == ref_grads.keys(), what
        for key in ref_grads:
            scale = float(np.abs(ref_grads[key]).max())
            np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-6, atol=1e-6 * scale, err_msg=f"{what} d{key}")
        np.testing.assert_allclose(final, ref_final, rtol=1e-6, atol=1e-6 * float(np.abs(ref_final).max()),
                                   err_msg=f"{what}: the state is never dropped")


def test_dropping_every_output_leaves_only_the_output_bias():
    spec, params, X, Y, state = problem(0)
    masks = DropoutMasks(0.5, np.zeros((T, B, H), bool))
    for network in networks("numpy", spec):
        loss, grads, _ = run(network, params, X, Y, state, masks)
        assert loss == pytest.approx(np.log(V))  # b_q starts at zero: uniform predictions
        assert not grads["W_hq"].any() and not grads["W_hh"].any()


def test_gradients_with_dropout_match_finite_differences():
    spec, params, X, Y, state = problem(E)
    params = {k: v / 30 * 3 for k, v in params.items()}
    masks = draw_masks(RATE, 0, 0, B, T, H, E)
    network = networks("numpy", spec)[-1]  # the fused one
    _, grads, _ = run(network, params, X, Y, state, masks)
    rng = np.random.default_rng(0)
    for key in ("W_hq", "W_xh", "W_embed", "W_hh"):
        index = tuple(rng.integers(0, n) for n in params[key].shape)
        shifted = {}
        for sign in (1, -1):
            moved = {k: v.copy() for k, v in params.items()}
            moved[key][index] += sign * 1e-6
            shifted[sign] = run(network, moved, X, Y, state, masks)[0]
        assert (shifted[1] - shifted[-1]) / 2e-6 == pytest.approx(grads[key][index], rel=1e-4, abs=1e-9), key


OPTIONS = dict(max_tokens=3000, hidden=16, embedding=8, batch_size=4, num_steps=10, epochs=3, dropout=0.25,
               val_fraction=0.1, progress=False, optimizer="adam", lr=0.01)


def test_dropout_trains_alike_on_every_backend_and_is_off_at_evaluation(corpora_dir):
    runs = {name: seqkit.train(**OPTIONS, backend=name, dtype="float64") for name in installed_backends()}
    base = runs["numpy"]
    plain = seqkit.train(**{**OPTIONS, "dropout": 0.0})
    assert base.history[0]["train_ppl"] != pytest.approx(plain.history[0]["train_ppl"], rel=1e-3)
    for name, result in runs.items():
        for a, b in zip(result.history, base.history):
            np.testing.assert_allclose([a["train_ppl"], a["val_ppl"]], [b["train_ppl"], b["val_ppl"]], rtol=1e-9,
                                       err_msg=name)
    # evaluation and generation see the whole network: the same figure twice, no random draw
    held_out = base.held_out()[0]
    first = base.evaluate_ids(held_out)
    assert base.evaluate_ids(held_out) == first
    assert first["ppl"] == pytest.approx(base.history[-1]["val_ppl"], rel=1e-9)


def test_dropout_resumes_exactly_mid_epoch(corpora_dir, tmp_path):
    whole = seqkit.train(**OPTIONS)
    resumed = interrupted_then_resumed(OPTIONS, tmp_path / "run", stop_at=7)
    timing = ("tokens_per_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in resumed.history] == \
        [{k: v for k, v in r.items() if k not in timing} for r in whole.history]


class _NoDropout(GenericNetwork):
    impl = "fused"
    supports_dropout = False


def test_a_fused_network_without_dropout_is_skipped_or_refused(monkeypatch):
    be = backend("numpy")
    spec = ModelSpec(RNNTanh(), V, H)
    monkeypatch.setattr(type(be), "fused_network", lambda self, spec: _NoDropout(self, spec))
    assert make_network(be, spec, "fused").impl == "fused"
    assert make_network(be, spec, "auto", dropout=0.2).impl == "scratch"
    with pytest.raises(ConfigError, match="cannot apply --dropout: use --impl scratch"):
        make_network(be, spec, "fused", dropout=0.2)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_an_invalid_rate_is_a_clear_error(rate):
    with pytest.raises(seqkit.SeqkitError, match="dropout"):
        seqkit.train(dropout=rate, progress=False)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("embedding", [0, E], ids=["one-hot", "embedding"])
@pytest.mark.parametrize("cell", [RNNTanh, RNNRelu], ids=["tanh", "relu"])
@pytest.mark.parametrize("name", installed_backends())
def test_every_fused_network_keeps_the_network_contract(name, cell, embedding, dtype):
    from seqkit.testing import check_network

    be = backend(name, dtype)
    spec = ModelSpec(cell(), V, H, embedding)
    found = [net for net in networks(name, spec) if not isinstance(net, GenericNetwork)]
    for network in [type(net)(be, spec) for net in found]:
        check_network(network)


class _IgnoresMasks(GenericNetwork):
    """Claims dropout support but trains the whole network."""

    def loss_and_grad(self, params, X, Y, state, loss_from=0, masks=None):
        return super().loss_and_grad(params, X, Y, state, loss_from)


def test_the_network_check_catches_ignored_masks():
    from seqkit.testing import check_network

    with pytest.raises(AssertionError, match=r"\(dropout\): loss"):
        check_network(_IgnoresMasks(backend("numpy"), ModelSpec(RNNTanh(), V, H, E)))
