"""The NumPy backend: op surface, op-tape path ("scratch") against the hand-written BPTT ("fused")."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from seqkit.errors import ConfigError
from seqkit.network import GenericNetwork, ModelSpec
from seqkit_cells.rnn import RNNTanh
from seqkit_numpy import fused as fused_module
from seqkit_numpy.backend import NumpyBackend
from seqkit_numpy.fused import FusedRNN
from helpers import CELLS, B, E, H, T, V, assert_close, make_problem

TOL = {"float64": 1e-6, "float32": 1e-4}


def make(dtype="float64", cell="rnn-tanh", embedding_dim=0, scale=1.0, seed=0):
    """Backend, spec, params (init scale 0.01 × ``scale``), a batch and a non-zero state."""
    backend = NumpyBackend(dtype=dtype)
    return (backend, *make_problem(backend, cell, embedding_dim, scale, seed))


# -- backend construction and registry -------------------------------------------------------
def test_registry_finds_numpy_backend():
    from seqkit.plugins import build_registry

    assert build_registry().get("backend", "numpy") is NumpyBackend


def test_plugin_import_stays_light():
    code = "import sys, seqkit_numpy; print('seqkit_numpy.backend' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_cpu_devices_accepted(device):
    backend = NumpyBackend(device=device)
    assert backend.device == "cpu" and backend.dtype == "float32"


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "gpu", ""])
def test_other_devices_rejected(device):
    with pytest.raises(ConfigError, match="CPU only"):
        NumpyBackend(device=device)


def test_bad_dtype_rejected():
    with pytest.raises(ConfigError, match="float16"):
        NumpyBackend(dtype="float16")


# -- op surface ------------------------------------------------------------------------------
def test_value_and_grad_detach_and_updates():
    ops = NumpyBackend(dtype="float32")
    params = {"w": ops.asarray(np.array([1.0, -2.0, 3.0])), "u": ops.asarray(np.array([[0.5]]))}

    def fn(p):
        h = ops.multiply(p["w"], p["w"])
        loss = ops.add(ops.multiply(h, p["u"][0, 0]), ops.zeros((3,))).sum()
        return loss, (h, [ops.tanh(h)])

    loss, grads, aux = ops.value_and_grad(fn, params)
    assert isinstance(loss, float) and loss == pytest.approx(7.0)
    np.testing.assert_allclose(grads["w"], [1.0, -2.0, 3.0])
    np.testing.assert_allclose(grads["u"], [[14.0]])
    assert all(g.dtype == np.float32 for g in grads.values())
    assert type(aux[0]) is np.ndarray and type(aux[1][0]) is np.ndarray
    assert ops.detach(params["w"]) is params["w"]

    assert ops.global_norm(grads) == pytest.approx(np.sqrt(1 + 4 + 9 + 196))
    scaled = ops.scale(grads, 0.5)
    assert scaled is grads and grads["u"][0, 0] == pytest.approx(7.0)
    w = params["w"]
    ops.sgd_update(params, grads, 0.1)
    assert params["w"] is w and w.dtype == np.float32
    np.testing.assert_allclose(w, [0.95, -1.9, 2.85], rtol=1e-6)


def test_fused_network_selection():
    ops = NumpyBackend()
    assert set(ops.fused_cells()) == {"rnn-tanh", "rnn-relu"}
    for cls in CELLS.values():
        net = ops.fused_network(ModelSpec(cls(), V, H))
        assert isinstance(net, FusedRNN) and net.impl == "fused"

    class OtherCell(RNNTanh):
        name = "other"

    assert ops.fused_network(ModelSpec(OtherCell(), V, H)) is None


# -- scratch vs fused ------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 50.0])
@pytest.mark.parametrize("loss_from", [0, 2])
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scratch_and_fused_agree(dtype, cell, embedding_dim, loss_from, scale):
    backend, spec, params, X, Y, state = make(dtype, cell, embedding_dim, scale)
    scratch, fused = GenericNetwork(backend, spec), FusedRNN(backend, spec)
    tol = TOL[dtype]

    loss_s, grads_s, state_s = scratch.loss_and_grad(params, X, Y, state, loss_from)
    loss_f, grads_f, state_f = fused.loss_and_grad(params, X, Y, state, loss_from)
    assert isinstance(loss_f, float)
    assert loss_f == pytest.approx(loss_s, rel=tol)
    assert set(grads_s) == set(grads_f) == set(spec.param_specs())
    for name in grads_s:
        assert grads_f[name].dtype == grads_s[name].dtype == dtype, name
        assert grads_f[name].shape == params[name].shape, name
        assert_close(grads_f[name], grads_s[name], tol)
    assert len(state_f) == 1 and state_f[0].dtype == state_s[0].dtype == dtype
    assert_close(state_f[0], state_s[0], tol)

    loss_s, state_s = scratch.loss(params, X, Y, state)
    loss_f, state_f = fused.loss(params, X, Y, state)
    assert loss_f == pytest.approx(loss_s, rel=tol)
    assert_close(state_f[0], state_s[0], tol)

    logits_s, step_s = scratch.step(params, X[:, 0], state)
    logits_f, step_f = fused.step(params, X[:, 0], state)
    assert type(logits_f) is np.ndarray and logits_f.shape == (B, V) and logits_f.dtype == dtype
    assert_close(logits_f, logits_s, tol)
    assert_close(step_f[0], step_s[0], tol)


@pytest.mark.parametrize("impl", [GenericNetwork, FusedRNN])
def test_loss_from_only_advances_the_state(impl):
    backend, spec, params, X, Y, state = make(scale=50.0)
    net = impl(backend, spec)
    loss, _, final = net.loss_and_grad(params, X, Y, state, loss_from=2)
    warm = state
    for t in range(2):
        _, warm = net.step(params, X[:, t], warm)
    want, want_final = net.loss(params, X[:, 2:], Y[:, 2:], warm)
    assert loss == pytest.approx(want, rel=1e-9)
    assert_close(final[0], want_final[0], 1e-9)


def test_fused_returns_fresh_state_and_grads():
    backend, spec, params, X, Y, state = make(scale=50.0)
    net = FusedRNN(backend, spec)
    _, grads, final = net.loss_and_grad(params, X, Y, state)
    kept = {k: v.copy() for k, v in grads.items()}, final[0].copy()
    net.loss_and_grad(params, X[::-1], Y, final)
    net.loss(params, Y, X, state)
    for name, grad in grads.items():
        np.testing.assert_array_equal(grad, kept[0][name])
    np.testing.assert_array_equal(final[0], kept[1])
    with pytest.raises(ValueError):
        net.loss_and_grad(params, X, Y, state, loss_from=T)


@pytest.mark.parametrize("num, ids", [
    (5, [0, 3, 3, 1, 0, 0]),
    (1000, [7, 999, 7, 3]),
])
@pytest.mark.parametrize("gemm_max", [0, 384])
def test_scatter_rows(monkeypatch, num, ids, gemm_max):
    monkeypatch.setattr(fused_module, "GEMM_SCATTER_MAX", gemm_max)
    ids = np.array(ids)
    rows = np.random.default_rng(0).normal(size=(len(ids), 3))
    want = np.zeros((num, 3))
    np.add.at(want, ids, rows)
    np.testing.assert_allclose(fused_module._scatter_rows(ids, rows, num), want, atol=1e-12)


# -- finite differences ----------------------------------------------------------------------
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("impl", [GenericNetwork, FusedRNN])
def test_gradients_match_finite_differences(impl, cell, embedding_dim):
    backend, spec, params, X, Y, state = make("float64", cell, embedding_dim, scale=50.0, seed=3)
    net = impl(backend, spec)
    loss_from = 1
    _, grads, _ = net.loss_and_grad(params, X, Y, state, loss_from)
    rng = np.random.default_rng(1)
    eps = 1e-6
    for name, value in params.items():
        flat_grad = grads[name].reshape(-1)
        # the largest gradient entry plus a few random ones (some one-hot rows have zero gradient)
        picks = {int(np.argmax(np.abs(flat_grad)))} | set(rng.integers(0, value.size, 4).tolist())
        for i in picks:
            orig = value.flat[i]
            value.flat[i] = orig + eps
            up = net.loss_and_grad(params, X, Y, state, loss_from)[0]
            value.flat[i] = orig - eps
            down = net.loss_and_grad(params, X, Y, state, loss_from)[0]
            value.flat[i] = orig
            numeric = (up - down) / (2 * eps)
            assert flat_grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, i)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_decoding_matches_step_by_step(dtype, cell, embedding_dim):
    backend, spec, params, X, _, state = make(dtype, cell, embedding_dim, scale=50)
    fused = FusedRNN(backend, spec)
    single = (state[0][:1],)
    expected, current = [], single
    for token in X[0]:
        logits, current = GenericNetwork(backend, spec).step(params, np.array([token]), current)
        expected.append(logits[0])
    with fused.decoding(params, single) as feed:
        got = [feed(int(token)) for token in X[0]]
    for g, e in zip(got, expected):
        assert g.dtype == np.dtype(dtype)
        assert_close(g, e, TOL[dtype])
