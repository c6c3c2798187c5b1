"""The NumPy fast paths: the joint-gradient BPTT layout, the NumPy decoder, the backend's norm and
update, and the evaluation path; each held to the generic ("scratch") network or to plain maths."""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from seqkit.engine import evaluate, predict
from seqkit.network import GenericNetwork, ModelSpec
from seqkit_cells.rnn import RNNTanh
from seqkit_decoders.sampling import GreedyDecoder
from seqkit_numpy import decoding as decoding_module
from seqkit_numpy import fused as fused_module
from seqkit_numpy.backend import NumpyBackend
from seqkit_numpy.decoding import RNNDecoder, ThreadChoice
from seqkit_numpy.fused import FusedRNN, joint_gradient_gemm
from helpers import CELLS, E, H, T, V, assert_close, make_problem

TOL = {"float64": 1e-6, "float32": 1e-4}


def fused(backend, spec, joint: bool, monkeypatch) -> FusedRNN:
    """A FusedRNN forced onto the joint (one GEMM for all weight gradients) or split path."""
    monkeypatch.setattr(fused_module, "JOINT_GEMM_MAX_FRACTION", 0 if joint else 10 ** 9)
    net = FusedRNN(backend, spec)
    assert net.joint is joint
    return net


def test_joint_gemm_rule():
    cell = RNNTanh()
    assert joint_gradient_gemm(ModelSpec(cell, 28, 512))          # the lesson's characters
    assert joint_gradient_gemm(ModelSpec(cell, 28, 256, 32))
    assert not joint_gradient_gemm(ModelSpec(cell, 10_000, 512))  # words: the wasted block would dominate
    assert not joint_gradient_gemm(ModelSpec(cell, 28, 64))


@pytest.mark.parametrize("joint", [True, False])
@pytest.mark.parametrize("loss_from", [0, 3])
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_both_gradient_layouts_match_autograd(monkeypatch, dtype, cell, embedding_dim, loss_from, joint):
    backend = NumpyBackend(dtype=dtype)
    spec, params, X, Y, state = make_problem(backend, cell, embedding_dim, scale=50.0)
    net = fused(backend, spec, joint, monkeypatch)
    loss_s, grads_s, state_s = GenericNetwork(backend, spec).loss_and_grad(params, X, Y, state, loss_from)
    loss_f, grads_f, state_f = net.loss_and_grad(params, X, Y, state, loss_from)
    assert loss_f == pytest.approx(loss_s, rel=TOL[dtype])
    assert set(grads_f) == set(grads_s)
    for name, grad in grads_s.items():
        assert grads_f[name].dtype == np.dtype(dtype) and grads_f[name].shape == grad.shape, name
        assert_close(grads_f[name], grad, TOL[dtype])
    assert_close(state_f[0], state_s[0], TOL[dtype])


@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_joint_path_matches_finite_differences(monkeypatch, cell, embedding_dim):
    backend = NumpyBackend(dtype="float64")
    spec, params, X, Y, state = make_problem(backend, cell, embedding_dim, scale=50.0, seed=5)
    net = fused(backend, spec, True, monkeypatch)
    _, grads, _ = net.loss_and_grad(params, X, Y, state, 1)
    eps = 1e-6
    for name, value in params.items():
        flat_grad = np.asarray(grads[name]).reshape(-1)
        i = int(np.argmax(np.abs(flat_grad)))
        orig = value.flat[i]
        value.flat[i] = orig + eps
        up = net.loss_and_grad(params, X, Y, state, 1)[0]
        value.flat[i] = orig - eps
        down = net.loss_and_grad(params, X, Y, state, 1)[0]
        value.flat[i] = orig
        assert flat_grad[i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), name


def test_joint_path_hands_out_fresh_gradients(monkeypatch):
    backend = NumpyBackend(dtype="float64")
    spec, params, X, Y, state = make_problem(backend, "rnn-tanh", 0, scale=50.0)
    net = fused(backend, spec, True, monkeypatch)
    _, grads, final = net.loss_and_grad(params, X, Y, state)
    kept = {k: np.array(v) for k, v in grads.items()}
    net.loss_and_grad(params, X[::-1], Y[:, ::-1], final, 2)
    net.loss(params, Y, X, state)
    for name, grad in grads.items():
        np.testing.assert_array_equal(grad, kept[name])


def test_changing_shapes_reallocates_buffers(monkeypatch):
    backend = NumpyBackend(dtype="float64")
    spec, params, X, Y, state = make_problem(backend, "rnn-tanh", 0, scale=50.0)
    net, scratch = fused(backend, spec, True, monkeypatch), GenericNetwork(backend, spec)
    for cut in (T, 2, T):  # a shorter minibatch (the epoch's tail), then the full length again
        want = scratch.loss_and_grad(params, X[:, :cut], Y[:, :cut], state)
        got = net.loss_and_grad(params, X[:, :cut], Y[:, :cut], state)
        assert got[0] == pytest.approx(want[0], rel=1e-9)
        for name in want[1]:
            assert_close(got[1][name], want[1][name], 1e-9)


def test_evaluation_uses_the_forward_path_only(monkeypatch):
    backend = NumpyBackend(dtype="float64")
    spec, params, X, Y, state = make_problem(backend, "rnn-relu", 0, scale=50.0)
    net = fused(backend, spec, True, monkeypatch)
    loss, final = net.loss(params, X, Y, state)
    assert net._bwd is None  # no gradient buffers were allocated for evaluation
    want, want_final = GenericNetwork(backend, spec).loss(params, X, Y, state)
    assert loss == pytest.approx(want, rel=1e-9)
    assert_close(final[0], want_final[0], 1e-9)
    ids = np.random.default_rng(0).integers(0, V, 200)
    got = evaluate(net, params, ids, 4, 7)
    assert got["ppl"] == pytest.approx(evaluate(GenericNetwork(backend, spec), params, ids, 4, 7)["ppl"], rel=1e-9)


# -- the backend's norm and update --------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_global_norm_over_strided_views_and_odd_shapes(dtype):
    backend = NumpyBackend(dtype=dtype)
    rng = np.random.default_rng(0)
    block = rng.normal(size=(40, 50)).astype(dtype)
    grads = {"view": block[:30, 7:], "col": block[:, 3], "cube": rng.normal(size=(2, 3, 4)).astype(dtype),
             "scalar": np.array(2.5, dtype=dtype), "empty": np.zeros((0, 3), dtype=dtype)}
    want = np.sqrt(sum(float(np.sum(np.asarray(g, dtype=np.float64) ** 2)) for g in grads.values()))
    assert backend.global_norm(grads) == pytest.approx(want, rel=1e-6 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("lr", [1.0, 0.25])
def test_sgd_update_in_place(lr):
    backend = NumpyBackend(dtype="float32")
    p = np.arange(6, dtype=np.float32).reshape(2, 3)
    g = np.full((2, 3), 2.0, dtype=np.float32)
    params = {"w": p}
    backend.sgd_update(params, {"w": g}, lr)
    assert params["w"] is p
    np.testing.assert_allclose(p, np.arange(6).reshape(2, 3) - lr * 2.0)
    np.testing.assert_array_equal(g, 2.0)


# -- the NumPy decoder -----------------------------------------------------------------------------
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_numpy_decoder_matches_stepping(cell, embedding_dim):
    backend = NumpyBackend(dtype="float64")
    spec, params, X, _, state = make_problem(backend, cell, embedding_dim, scale=50.0)
    scratch = GenericNetwork(backend, spec)
    decoder = RNNDecoder(params, relu=cell == "rnn-relu", embedded=embedding_dim > 0)
    current = (state[0][:1],)
    with decoder.session(state[0][0]) as feed:
        outputs = [feed(int(token)) for token in X[0]]
    for token, got in zip(X[0], outputs):
        want, current = scratch.step(params, np.array([token]), current)
        assert_close(got, want[0], 1e-12)
    assert len({id(o) for o in outputs}) == len(outputs)  # fresh arrays, not one reused buffer


def test_numpy_decoder_converts_dtypes_and_restores_the_blas_threads():
    backend = NumpyBackend(dtype="float32")
    spec, params, *_ = make_problem(backend, "rnn-tanh")
    wide = {k: v.astype(np.float64) for k, v in params.items()}
    decoder = RNNDecoder({**wide, "W_hh": params["W_hh"]})  # the dtype follows W_hh
    assert decoder.joint.dtype == np.float32 and decoder.inputs.dtype == np.float32
    assert decoder.joint.shape == (H, H + V) and decoder.joint_t.shape == (H + V, H)
    assert decoder.joint_t.flags.c_contiguous
    before = _blas_threads()
    with decoder.session(np.zeros(H)) as feed:
        outputs = [feed(3) for _ in range(3 * ThreadChoice.TUNING_TOKENS)]  # through both layouts
    assert all(o.dtype == np.float32 for o in outputs)
    assert _blas_threads() == before


def _blas_threads():
    """The thread counts of the BLAS libraries the decoder controls (those loaded with NumPy; a
    framework loaded later, MXNet with its own OpenBLAS, is not the decoder's to limit)."""
    known = {lib["filepath"] for lib in decoding_module._threadpools().info()}
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and lib["filepath"] in known]


@pytest.mark.parametrize("slow, chosen", [(1, 2), (2, 1)])
def test_the_session_keeps_the_thread_count_its_own_tokens_ran_faster_on(slow, chosen):
    calls = {1: 0, 2: 0}

    def product(threads):
        def run():
            calls[threads] += 1
            if threads == slow:
                time.sleep(0.005)
        return run

    with threadpool_limits(2, user_api="blas"):
        choice = ThreadChoice({1: product(1), 2: product(2)}, allowed=2)
        for _ in range(2 * ThreadChoice.TUNING_TOKENS + 2 + 10):
            choice.tick()
            choice.product()
        assert _blas_threads() == [chosen] * len(_blas_threads())
    assert choice.threads == chosen and not choice.deciding
    if slow == 2:  # abandoned as soon as it had taken longer than the whole one-thread stretch
        assert calls[2] <= 3
    else:
        assert calls[1] == ThreadChoice.TUNING_TOKENS  # then never again


def _recording_choice(monkeypatch) -> list:
    allowed = []

    class Recording(ThreadChoice):
        def __init__(self, products, limit):
            allowed.append(limit)
            super().__init__(products, limit)

    monkeypatch.setattr(decoding_module, "ThreadChoice", Recording)
    return allowed


def test_a_session_can_be_held_to_one_thread(monkeypatch):
    backend = NumpyBackend(dtype="float32")
    _, params, *_ = make_problem(backend, "rnn-tanh")
    allowed = _recording_choice(monkeypatch)
    with threadpool_limits(2, user_api="blas"):
        for limit in (1, 2):
            with RNNDecoder(params).session(np.zeros(H), max_threads=limit) as feed:
                feed(1)
    assert allowed == [1, 2]


def test_mxnet_generation_stays_on_one_blas_thread(monkeypatch):
    from seqkit.plugins import build_registry

    component = build_registry().component("backend", "mxnet")
    if component.unavailable_reason:
        pytest.skip(component.unavailable_reason)
    backend = component.load()(device="cpu", dtype="float32")
    spec, params, *_ = make_problem(backend, "rnn-tanh")
    allowed = _recording_choice(monkeypatch)
    net = backend.fused_network(spec)
    predict(net, params, np.array([1, 2]), 3, GreedyDecoder(), np.random.default_rng(0))
    assert allowed == [1]


def test_one_allowed_blas_thread_means_no_timing():
    with threadpool_limits(1, user_api="blas"):
        choice = ThreadChoice({1: lambda: None, 2: lambda: None}, allowed=1)
        for _ in range(3 * ThreadChoice.TUNING_TOKENS):
            choice.tick()
        assert choice.threads == 1 and not choice.times


def test_predict_through_fused_decoding_equals_scratch():
    backend = NumpyBackend(dtype="float64")
    spec, params, *_ = make_problem(backend, "rnn-tanh", scale=80.0)
    prefix = np.array([1, 2, 3])
    rng = np.random.default_rng
    got = predict(FusedRNN(backend, spec), params, prefix, 12, GreedyDecoder(), rng(0))
    want = predict(GenericNetwork(backend, spec), params, prefix, 12, GreedyDecoder(), rng(0))
    assert got == want


# -- MXNet generation through the NumPy decoder -------------------------------------------------
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_mxnet_decoding_goes_through_numpy_and_matches_its_step(cell, embedding_dim):
    from seqkit.plugins import build_registry

    component = build_registry().component("backend", "mxnet")
    if component.unavailable_reason:
        pytest.skip(component.unavailable_reason)
    backend = component.load()(device="cpu", dtype="float64")
    spec, params, X, _, state = make_problem(backend, cell, embedding_dim, scale=50.0)
    net = backend.fused_network(spec)
    assert_numpy_decoding_matches_step(net, params, X, state)


@pytest.mark.parametrize("impl", ["fused", "nn.RNN"])
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_torch_decoding_goes_through_numpy_and_matches_its_step(cell, embedding_dim, impl):
    from seqkit.plugins import build_registry

    component = build_registry().component("backend", "torch")
    if component.unavailable_reason:
        pytest.skip(component.unavailable_reason)
    from seqkit_torch.fused import FusedRNN as TorchFused
    from seqkit_torch.module import ModuleRNN

    backend = component.load()(device="cpu", dtype="float64")
    spec, params, X, _, state = make_problem(backend, cell, embedding_dim, scale=50.0)
    net = (TorchFused if impl == "fused" else ModuleRNN)(backend, spec)
    assert_numpy_decoding_matches_step(net, params, X, state)


def assert_numpy_decoding_matches_step(net, params, X, state) -> None:
    """``net.decoding`` runs the NumPy decoder and gives, token by token, the logits of ``net.step``."""
    current = (state[0][:1],)
    with net.decoding(params, current) as feed:
        assert feed.__qualname__.startswith("RNNDecoder.session")
        outputs = [feed(int(token)) for token in X[0]]
    for token, got in zip(X[0], outputs):
        want, current = net.step(params, np.array([token]), current)
        assert type(got) is np.ndarray and got.dtype == np.float64
        assert_close(got, want[0], 1e-9)
