"""The MXNet backend: compat shims, devices, op surface, detaching, scratch vs fused vs NumPy, runs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqkit_mxnet import compat

if importlib.util.find_spec("mxnet") is None:
    pytest.skip("mxnet is not installed (pip install 'seqkit[mxnet]')", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402

import seqkit  # noqa: E402
from seqkit.cli import main  # noqa: E402
from seqkit.engine import TrainSettings, fit  # noqa: E402
from seqkit.errors import ConfigError, UnavailableError  # noqa: E402
from seqkit.network import GenericNetwork, ModelSpec  # noqa: E402
from seqkit.plugins import build_registry  # noqa: E402
from seqkit_cells.rnn import RNNRelu, RNNTanh  # noqa: E402
from seqkit_clippers.norm import NormClipper  # noqa: E402
from seqkit_mxnet import backend as backend_module  # noqa: E402
from seqkit_mxnet.backend import MxnetBackend, mx, nd  # noqa: E402
from seqkit_mxnet.fused import FusedRNN  # noqa: E402
from seqkit_numpy.backend import NumpyBackend  # noqa: E402
from seqkit_numpy.fused import FusedRNN as NumpyFusedRNN  # noqa: E402
from seqkit_samplers.partition import SequentialSampler  # noqa: E402
from helpers import assert_close  # noqa: E402

SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
V, H, B, T, E = 11, 8, 3, 5, 4
CELLS = {"rnn-tanh": RNNTanh, "rnn-relu": RNNRelu}
TOL = {"float64": 1e-6, "float32": 1e-4}
TEXT = "the quick brown fox jumps over the lazy dog " * 40


def has_history(x) -> bool:
    """Whether ``x`` is still part of an autograd graph."""
    try:
        mx.autograd.get_symbol(x)
        return True
    except mx.base.MXNetError:
        return False


def problem(cell="rnn-tanh", vocab=V, embedding_dim=0, scale=50.0, seed=0):
    """Spec, float64 NumPy params (biases non-zero), a batch and a non-zero initial state."""
    spec = ModelSpec(CELLS[cell](), vocab, H, embedding_dim)
    rng = np.random.default_rng(seed)
    params = {k: v * scale for k, v in spec.init_params(rng).items()}
    for name in ("b_h", "b_q"):
        params[name] = params[name] + rng.normal(0.0, 0.5, params[name].shape)
    X, Y = rng.integers(0, vocab, (B, T)), rng.integers(0, vocab, (B, T))
    return spec, params, X, Y, rng.normal(0.0, 0.5, (B, H))


@pytest.fixture
def text_file(tmp_path) -> str:
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


@pytest.fixture
def lyrics_data(monkeypatch, tmp_path):
    if not SHARED_CORPORA.is_dir():
        pytest.skip(f"shared corpora not found at {SHARED_CORPORA}")
    monkeypatch.setenv("SEQKIT_DATA", str(SHARED_CORPORA))
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))


# -- compat: the only place with shims ---------------------------------------------------------
@pytest.mark.parametrize("version", ["2.0.0", "2.1.3", "3.0.0rc1"])
def test_numpy_2_is_refused_with_the_fix(version):
    with pytest.raises(UnavailableError, match=r"MXNet 1\.9\.1 needs numpy < 2: pip install 'numpy<2'"):
        compat.check_numpy(version)


@pytest.mark.parametrize("version", ["1.24.0", "1.26.4", "1.26.0.dev0+abc"])
def test_numpy_1_is_accepted(version):
    compat.check_numpy(version)


def test_import_refuses_numpy_2(monkeypatch):
    monkeypatch.setattr(compat.numpy, "__version__", "2.0.2")
    compat.import_mxnet.cache_clear()
    try:
        with pytest.raises(UnavailableError, match="numpy < 2"):
            compat.import_mxnet()
    finally:
        compat.import_mxnet.cache_clear()


def test_import_failure_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "mxnet", None)  # makes `import mxnet` raise ImportError
    compat.import_mxnet.cache_clear()
    try:
        with pytest.raises(UnavailableError) as info:
            compat.import_mxnet()
    finally:
        compat.import_mxnet.cache_clear()
    message = str(info.value)
    assert "\n" not in message and "mxnet cannot be imported" in message and "--backend" in message


def test_numpy_bool_alias_restored():
    assert compat.import_mxnet() is mx
    assert np.bool is bool


@pytest.mark.parametrize("chosen, engine", [(None, "NaiveEngine"), ("ThreadedEngine", "ThreadedEngine")])
def test_mxnet_runs_on_the_synchronous_engine_unless_the_user_chose_one(chosen, engine):
    code = ("import os; from seqkit_mxnet.compat import import_mxnet; mx = import_mxnet(); "
            "mx.nd.ones((2,)).asnumpy(); print(os.environ['MXNET_ENGINE_TYPE'])")
    env = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}
    if chosen:
        env["MXNET_ENGINE_TYPE"] = chosen
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == engine
    if chosen:
        assert f"using engine: {engine}" in out.stderr  # what MXNet itself reports
    else:
        assert "using engine" not in out.stderr  # seqkit's own choice is not announced


def test_plugin_import_stays_light():
    code = "import sys, seqkit_mxnet; print('mxnet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_finds_mxnet_backend():
    registry = build_registry()
    assert registry.get("backend", "mxnet") is MxnetBackend
    assert registry.component("backend", "mxnet").unavailable_reason is None


# -- devices and dtypes ------------------------------------------------------------------------
def test_cpu_devices():
    assert MxnetBackend("cpu").device == "cpu"
    backend = MxnetBackend("auto", "float64")
    assert backend.device == ("gpu:0" if backend_module.num_gpus() else "cpu")
    assert backend.dtype == "float64"


@pytest.mark.parametrize("device, gpus, resolved", [
    ("auto", 2, "gpu:0"), ("gpu", 1, "gpu:0"), ("gpu:1", 2, "gpu:1"), ("cuda", 1, "gpu:0"),
    ("CUDA:1", 2, "gpu:1"), ("auto", 0, "cpu"),
])
def test_gpu_devices_resolve(monkeypatch, device, gpus, resolved):
    monkeypatch.setattr(backend_module, "num_gpus", lambda: gpus)
    ctx, name = backend_module.resolve_device(device)
    assert name == resolved and str(ctx) == f"{resolved.split(':')[0]}({ctx.device_id})"


@pytest.mark.parametrize("device, gpus, match", [
    ("gpu", 0, "no GPU"), ("cuda:0", 0, "no GPU"), ("gpu:2", 2, r"2 GPU\(s\)"),
    ("tpu", 0, "unknown device"), ("gpu:x", 1, "unknown device"), ("", 0, "unknown device"),
])
def test_bad_devices_rejected(monkeypatch, device, gpus, match):
    monkeypatch.setattr(backend_module, "num_gpus", lambda: gpus)
    with pytest.raises(ConfigError, match=match):
        MxnetBackend(device)


def test_bad_dtype_rejected():
    with pytest.raises(ConfigError, match="float16"):
        MxnetBackend(dtype="float16")


# -- op surface --------------------------------------------------------------------------------
def test_value_and_grad_and_updates():
    ops = MxnetBackend("cpu", "float32")
    params = {"w": ops.asarray(np.array([1.0, -2.0, 3.0])), "u": ops.asarray(np.array([[0.5]]))}

    def fn(p):
        h = ops.multiply(p["w"], p["w"])
        loss = nd.sum(ops.multiply(h, p["u"].reshape((1,))))
        return loss, (h, [ops.tanh(h)])

    loss, grads, aux = ops.value_and_grad(fn, params)
    assert isinstance(loss, float) and loss == pytest.approx(7.0)
    np.testing.assert_allclose(grads["w"].asnumpy(), [1.0, -2.0, 3.0])
    np.testing.assert_allclose(grads["u"].asnumpy(), [[14.0]])
    assert not has_history(aux[0]) and not has_history(aux[1][0])
    _, again, _ = ops.value_and_grad(fn, params)
    assert again["w"] is not grads["w"]  # handed-out gradients are not overwritten by the next call

    assert ops.global_norm(grads) == pytest.approx(np.sqrt(1 + 4 + 9 + 196), rel=1e-6)
    assert ops.scale(grads, 0.5) is grads and grads["u"].asnumpy()[0, 0] == pytest.approx(7.0)
    w = params["w"]
    ops.sgd_update(params, grads, 0.1)
    assert params["w"] is w
    np.testing.assert_allclose(w.asnumpy(), [0.95, -1.9, 2.85], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_update_is_exact(dtype):
    ops = MxnetBackend("cpu", dtype)
    rng = np.random.default_rng(1)
    p, g = rng.normal(size=(40, 30)).astype(dtype), rng.normal(size=(40, 30)).astype(dtype)
    params, grads = {"p": ops.asarray(p)}, {"p": ops.asarray(g)}
    ops.sgd_update(params, grads, 0.37)
    np.testing.assert_array_equal(params["p"].asnumpy(), p - np.asarray(0.37, dtype) * g)


def test_detach_cuts_the_graph():
    ops = MxnetBackend("cpu", "float64")
    x = ops.asarray(np.array([1.0, 2.0]))
    x.attach_grad()
    with mx.autograd.record():
        y = x * x
        cut = ops.detach(y)
        loss = nd.sum(cut * x)
    loss.backward()
    assert has_history(y) and not has_history(cut)
    np.testing.assert_array_equal(x.grad.asnumpy(), [1.0, 4.0])  # d(sum(c * x))/dx with c constant


@pytest.mark.parametrize("impl", [GenericNetwork, FusedRNN])
def test_carried_state_is_detached(impl):
    """The engine carries the returned state into the next minibatch: the next gradient must not
    depend on (or reach into) the previous minibatch's graph."""
    spec, params, X, Y, _ = problem()
    ops = MxnetBackend("cpu", "float64")
    net = impl(ops, spec)
    p = {k: ops.asarray(v) for k, v in params.items()}
    _, _, carried = net.loss_and_grad(p, X, Y, net.init_state(B))
    assert not has_history(carried[0])
    loss, grads, _ = net.loss_and_grad(p, Y, X, carried)
    fresh = (ops.asarray(ops.to_numpy(carried[0])),)
    loss2, grads2, _ = net.loss_and_grad(p, Y, X, fresh)
    assert loss == loss2
    for name in grads:
        np.testing.assert_array_equal(grads[name].asnumpy(), grads2[name].asnumpy())
    for state in (net.loss(p, X, Y, carried)[1], net.step(p, X[:, 0], carried)[1]):
        assert not has_history(state[0])


def test_fused_network_selection():
    ops = MxnetBackend("cpu")
    assert set(ops.fused_cells()) == {"rnn-tanh", "rnn-relu"}
    for cls in CELLS.values():
        net = ops.fused_network(ModelSpec(cls(), V, H))
        assert isinstance(net, FusedRNN) and net.impl == "fused"

    class OtherCell(RNNTanh):
        name = "other"

    assert ops.fused_network(ModelSpec(OtherCell(), V, H)) is None


# -- scratch vs fused vs NumPy -----------------------------------------------------------------
@pytest.mark.parametrize("loss_from", [0, 2])
@pytest.mark.parametrize("vocab, embedding_dim", [(V, 0), (6, 0), (V, E)])  # one-hot gather, one-hot GEMM, embedding
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_numpy(dtype, cell, vocab, embedding_dim, loss_from):
    spec, params, X, Y, h0 = problem(cell, vocab, embedding_dim)
    ref_ops = NumpyBackend(dtype="float64")
    ref = NumpyFusedRNN(ref_ops, spec)
    ref_p = {k: ref_ops.asarray(v) for k, v in params.items()}
    want_loss, want_grads, want_final = ref.loss_and_grad(ref_p, X, Y, (h0,), loss_from)
    want_eval, want_eval_state = ref.loss(ref_p, X, Y, (h0,))
    want_logits, want_step = ref.step(ref_p, X[:, 0], (h0,))

    ops = MxnetBackend("cpu", dtype)
    tol = TOL[dtype]
    for net in (GenericNetwork(ops, spec), FusedRNN(ops, spec)):
        p = {k: ops.asarray(v) for k, v in params.items()}
        state = (ops.asarray(h0),)
        loss, grads, final = net.loss_and_grad(p, X, Y, state, loss_from)
        assert isinstance(loss, float) and loss == pytest.approx(want_loss, rel=tol), net.impl
        assert set(grads) == set(spec.param_specs())
        for name, grad in grads.items():
            assert grad.dtype == np.dtype(dtype) and grad.shape == p[name].shape, name
            assert_close(grad.asnumpy(), want_grads[name], tol)
        assert_close(final[0].asnumpy(), want_final[0], tol)

        loss, final = net.loss(p, X, Y, state)
        assert loss == pytest.approx(want_eval, rel=tol)
        assert_close(final[0].asnumpy(), want_eval_state[0], tol)

        logits, stepped = net.step(p, X[:, 0], state)
        assert type(logits) is np.ndarray and logits.shape == (B, vocab) and logits.dtype == dtype
        assert_close(logits, want_logits, tol)
        assert_close(stepped[0].asnumpy(), want_step[0], tol)


def test_fused_h2h_bias_is_not_trained():
    spec, params, X, Y, h0 = problem()
    ops = MxnetBackend("cpu", "float64")
    net = FusedRNN(ops, spec)
    p = {k: ops.asarray(v) for k, v in params.items()}
    _, grads, _ = net.loss_and_grad(p, X, Y, (ops.asarray(h0),))
    ops.sgd_update(p, grads, 1.0)
    net.loss_and_grad(p, X, Y, (ops.asarray(h0),))
    assert set(grads) == set(spec.param_specs())
    flat = net._flat.asnumpy()
    assert not flat[-H:].any()  # the operator's h2h bias
    np.testing.assert_array_equal(flat[-2 * H:-H], p["b_h"].asnumpy())


@pytest.mark.parametrize("vocab", [V, 6])
def test_fused_sees_in_place_updates(vocab):
    """The operator's weights are copied in on every call: no stale weights after an SGD step,
    in training or in evaluation (oneDNN caches weights in inference mode)."""
    spec, params, X, Y, h0 = problem(vocab=vocab)
    ops = MxnetBackend("cpu", "float32")
    fused, scratch = FusedRNN(ops, spec), GenericNetwork(ops, spec)
    p = {k: ops.asarray(v) for k, v in params.items()}
    state = (ops.asarray(h0),)
    for _ in range(3):
        assert fused.loss(p, X, Y, state)[0] == pytest.approx(scratch.loss(p, X, Y, state)[0], rel=1e-4)
        loss, grads, _ = fused.loss_and_grad(p, X, Y, state)
        assert loss == pytest.approx(scratch.loss_and_grad(p, X, Y, state)[0], rel=1e-4)
        ops.sgd_update(p, grads, 0.5)


def test_sequential_epoch_matches_numpy():
    """One epoch with the state carried across minibatches: same losses as NumPy on both impls."""
    spec, params, _, _, _ = problem(scale=1.0)
    tokens = np.random.default_rng(3).integers(0, V, 400)
    settings = TrainSettings(epochs=2, batch_size=4, num_steps=6, lr=1.0)

    def history(ops, network_cls):
        p = {k: ops.asarray(v) for k, v in params.items()}
        rows = fit(network_cls(ops, spec), p, tokens, SequentialSampler(), NormClipper(clip_theta=0.5),
                   settings, np.random.default_rng(0))
        return [row["train_ppl"] for row in rows], ops.to_numpy(p["W_hh"])

    want, want_w = history(NumpyBackend(dtype="float64"), NumpyFusedRNN)
    for cls in (GenericNetwork, FusedRNN):
        got, got_w = history(MxnetBackend("cpu", "float64"), cls)
        np.testing.assert_allclose(got, want, rtol=1e-9)
        assert_close(got_w, want_w, 1e-9)


# -- runs, CLI and generation ------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fused", "scratch"])
def test_train_perplexity_falls(text_file, impl):
    run = seqkit.train(backend="mxnet", impl=impl, corpus_file=text_file, hidden=32, batch_size=4,
                       num_steps=10, epochs=4, lr=2.0, sampler="random", predict_len=10, seed=0)
    assert run.backend.name == "mxnet" and run.network.impl == impl
    ppl = [row["train_ppl"] for row in run.history]
    assert ppl[-1] < 0.7 * ppl[0]
    assert run.predict("the ", length=10).startswith("the ")


def test_cli_run_and_device_error(text_file, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, [
        "run", "--backend", "mxnet", "--corpus-file", text_file, "--hidden", "16", "--epochs", "2",
        "--batch-size", "4", "--num-steps", "8", "--predict-len", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mxnet" in result.output and (out / "summary.json").is_file()

    result = runner.invoke(main, ["run", "--backend", "mxnet", "--device", "gpu:7", "--corpus-file", text_file,
                                  "--out", str(tmp_path / "bad")])
    assert result.exit_code == 1
    assert "gpu:7" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("backend", build_registry().names("backend"))
def test_lyrics_prefix_generation(lyrics_data, backend):
    component = build_registry().component("backend", backend)
    if component.unavailable_reason:
        pytest.skip(component.unavailable_reason)
    options = dict(corpus="lyrics", max_tokens=1000, hidden=32, batch_size=4, num_steps=8, epochs=2,
                   optimizer="sgd", embedding=0, lr=1.0, predict_len=0, dtype="float64", seed=0)
    try:
        run = seqkit.train(backend=backend, **options)
    except UnavailableError as exc:
        pytest.skip(str(exc))
    text = run.predict("分开", length=20)
    assert text.startswith("分开") and len(text) == 22
    assert all(char in run.vocab.token_to_idx for char in text)
    if backend != "numpy":  # greedy decoding from the same seed: the same text as NumPy
        assert text == seqkit.train(backend="numpy", **options).predict("分开", length=20)
