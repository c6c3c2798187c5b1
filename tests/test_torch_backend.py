"""The torch backend: op surface, devices, errors, scratch (autograd) against fused networks, end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

import seqkit  # noqa: E402
from seqkit.cli import main  # noqa: E402
from seqkit.errors import ConfigError, SeqkitError, UnavailableError  # noqa: E402
from seqkit.network import GenericNetwork, ModelSpec  # noqa: E402
from seqkit.plugins import build_registry  # noqa: E402
from seqkit_cells.rnn import RNNTanh  # noqa: E402
from seqkit_torch import devices  # noqa: E402
from seqkit_torch.backend import TorchBackend  # noqa: E402
from seqkit_torch.fused import FusedRNN  # noqa: E402
from seqkit_torch.module import ModuleRNN  # noqa: E402
from helpers import CELLS, E, H, T, V, assert_close, make_problem  # noqa: E402

TOL = {"float64": 1e-6, "float32": 1e-4}
FUSED = {"bptt": FusedRNN, "nn.RNN": ModuleRNN}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def make(dtype="float64", cell="rnn-tanh", embedding_dim=0, scale=1.0, seed=0, device="cpu"):
    """Backend, spec, params (init scale 0.01 × ``scale``), a batch and a non-zero state."""
    backend = TorchBackend(device=device, dtype=dtype)
    return (backend, *make_problem(backend, cell, embedding_dim, scale, seed))


# -- registry, devices, dtypes ---------------------------------------------------------------
def test_registry_finds_torch_backend():
    assert build_registry().get("backend", "torch") is TorchBackend


def test_plugin_import_does_not_import_torch():
    code = "import sys, seqkit_torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cpu_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TorchBackend(device="auto").device == "cpu"
    backend = TorchBackend(device="cpu", dtype="float64")
    assert backend.device == "cpu" and backend.dtype == "float64" and backend.torch_dtype == torch.float64


@pytest.mark.parametrize("device", ["gpu", "", "cuda:x", "cuda:-1", "cpu:0", "tpu", "cuda0"])
def test_unparseable_device(device):
    with pytest.raises(ConfigError, match=r"not understood; use auto, cpu, cuda or cuda:N"):
        TorchBackend(device=device)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_requested_but_absent(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"CUDA is not available.*use --device cpu"):
        TorchBackend(device=device)


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert devices.resolve_device("auto") == "cuda:0"
    assert devices.resolve_device("cuda") == "cuda:0"
    assert devices.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match=r"'cuda:2' does not exist: 2 CUDA device\(s\) here; use cuda:0 to cuda:1"):
        devices.resolve_device("cuda:2")


def test_bad_dtype_rejected():
    with pytest.raises(ConfigError, match="float16"):
        TorchBackend(device="cpu", dtype="float16")


def test_backend_leaves_thread_settings_alone(corpora_dir):
    before = torch.get_num_threads(), torch.get_num_interop_threads()
    seqkit.train(backend="torch", corpus="timemachine", max_tokens=600, epochs=1, hidden=8, num_steps=5,
                 batch_size=2, predict_len=3)
    assert (torch.get_num_threads(), torch.get_num_interop_threads()) == before


# -- op surface ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conversion(dtype):
    ops = TorchBackend(device="cpu", dtype=dtype)
    src = np.arange(6.0).reshape(2, 3)
    x = ops.asarray(src)
    assert isinstance(x, torch.Tensor) and x.dtype == ops.torch_dtype and str(x.device) == "cpu"
    src[0, 0] = 99.0
    assert x[0, 0] == 0.0
    assert ops.asarray(np.arange(3, dtype=np.int32)).dtype == torch.int64
    y = ops.to_numpy(x)
    assert type(y) is np.ndarray and y.dtype == dtype
    y[0, 0] = 5.0
    assert x[0, 0] == 0.0  # a copy, not a view
    assert ops.to_numpy(x.requires_grad_(True) * 2)[1, 2] == 10.0


def test_value_and_grad_detach_and_updates():
    ops = TorchBackend(device="cpu")
    params = {"w": ops.asarray(np.array([1.0, -2.0, 3.0])), "u": ops.asarray(np.array([[0.5]])),
              "unused": ops.asarray(np.ones(2))}

    def fn(p):
        h = ops.multiply(p["w"], p["w"])
        loss = ops.multiply(h, p["u"][0, 0]).sum()
        return loss, (h, [ops.tanh(h)])

    loss, grads, aux = ops.value_and_grad(fn, params)
    assert isinstance(loss, float) and loss == pytest.approx(7.0)
    assert_close(grads["w"], [1.0, -2.0, 3.0], 1e-6)
    assert_close(grads["u"], [[14.0]], 1e-6)
    assert torch.equal(grads["unused"], torch.zeros(2))
    assert all(g.dtype == torch.float32 and not g.requires_grad for g in grads.values())
    assert not aux[0].requires_grad and not aux[1][0].requires_grad
    assert not any(p.requires_grad for p in params.values())
    assert not ops.detach(aux[0] * torch.ones(1, requires_grad=True)).requires_grad

    assert ops.global_norm(grads) == pytest.approx(np.sqrt(1 + 4 + 9 + 196))
    scaled = ops.scale(grads, 0.5)
    assert scaled is grads and grads["u"][0, 0] == pytest.approx(7.0)
    w = params["w"]
    ops.sgd_update(params, grads, 0.1)
    assert params["w"] is w and w.dtype == torch.float32
    assert_close(w, [0.95, -1.9, 2.85], 1e-6)
    ops.synchronize()


def test_fused_network_selection():
    ops = TorchBackend(device="cpu")
    assert set(ops.fused_cells()) == {"rnn-tanh", "rnn-relu"}
    for cls in CELLS.values():
        net = ops.fused_network(ModelSpec(cls(), V, H))
        assert isinstance(net, FusedRNN) and net.impl == "fused"

    class OtherCell(RNNTanh):
        name = "other"

    assert ops.fused_network(ModelSpec(OtherCell(), V, H)) is None
    with pytest.raises(ValueError, match="other"):
        FusedRNN(ops, ModelSpec(OtherCell(), V, H))


@cuda_only
def test_cuda_picks_the_cudnn_network():
    ops = TorchBackend(device="cuda")
    assert ops.device.startswith("cuda:")
    assert isinstance(ops.fused_network(ModelSpec(RNNTanh(), V, H)), ModuleRNN)


# -- scratch vs fused ------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused_name", sorted(FUSED))
@pytest.mark.parametrize("loss_from", [0, 2])
@pytest.mark.parametrize("embedding_dim", [0, E])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scratch_and_fused_agree(dtype, cell, embedding_dim, loss_from, fused_name, device):
    backend, spec, params, X, Y, state = make(dtype, cell, embedding_dim, scale=50.0, device=device)
    scratch, fused = GenericNetwork(backend, spec), FUSED[fused_name](backend, spec)
    tol = TOL[dtype]

    loss_s, grads_s, state_s = scratch.loss_and_grad(params, X, Y, state, loss_from)
    loss_f, grads_f, state_f = fused.loss_and_grad(params, X, Y, state, loss_from)
    assert isinstance(loss_f, float)
    assert loss_f == pytest.approx(loss_s, rel=tol)
    assert set(grads_s) == set(grads_f) == set(spec.param_specs())
    for name in grads_s:
        assert grads_f[name].dtype == grads_s[name].dtype == backend.torch_dtype, name
        assert grads_f[name].shape == params[name].shape, name
        assert not grads_f[name].requires_grad, name
        assert_close(grads_f[name], grads_s[name], tol)
    assert len(state_f) == 1 and not state_f[0].requires_grad
    assert_close(state_f[0], state_s[0], tol)

    loss_s, state_s = scratch.loss(params, X, Y, state)
    loss_f, state_f = fused.loss(params, X, Y, state)
    assert loss_f == pytest.approx(loss_s, rel=tol)
    assert_close(state_f[0], state_s[0], tol)

    for rows in (slice(None), slice(0, 1)):  # a batch, and generation's batch of one
        sub = (state[0][rows],)
        logits_s, step_s = scratch.step(params, X[rows, 0], sub)
        logits_f, step_f = fused.step(params, X[rows, 0], sub)
        assert type(logits_f) is np.ndarray and logits_f.shape == logits_s.shape and logits_f.dtype == dtype
        assert_close(logits_f, logits_s, tol)
        assert_close(step_f[0], step_s[0], tol)


@pytest.mark.parametrize("impl", [GenericNetwork, FusedRNN, ModuleRNN])
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


@pytest.mark.parametrize("impl", [FusedRNN, ModuleRNN])
def test_fused_returns_fresh_state_and_grads(impl):
    backend, spec, params, X, Y, state = make(scale=50.0)
    net = impl(backend, spec)
    _, grads, final = net.loss_and_grad(params, X, Y, state)
    kept = {k: v.clone() for k, v in grads.items()}, final[0].clone()
    net.loss_and_grad(params, X[::-1], Y, final)
    net.loss(params, Y, X, state)
    for name, grad in grads.items():
        assert torch.equal(grad, kept[0][name]), name
    assert torch.equal(final[0], kept[1])
    with pytest.raises(ValueError):
        net.loss_and_grad(params, X, Y, state, loss_from=T)


def test_generation_sees_parameter_updates():
    """The fused step caches W_xh + b_h; an in-place update or a new tensor must refresh it."""
    backend, spec, params, X, _, state = make(scale=50.0)
    scratch, fused = GenericNetwork(backend, spec), FusedRNN(backend, spec)
    ids, one = X[:1, 0], (state[0][:1],)
    fused.step(params, ids, one)
    backend.sgd_update(params, {"b_h": torch.ones(H, dtype=torch.float64)}, 0.5)
    assert_close(fused.step(params, ids, one)[0], scratch.step(params, ids, one)[0], 1e-9)
    params["W_xh"] = params["W_xh"] * 2
    assert_close(fused.step(params, ids, one)[0], scratch.step(params, ids, one)[0], 1e-9)


# -- out of memory ---------------------------------------------------------------------------
OOM_ERRORS = [
    lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: out of memory"),
]


@pytest.mark.parametrize("make_error", OOM_ERRORS)
@pytest.mark.parametrize("impl", [GenericNetwork, FusedRNN, ModuleRNN])
def test_out_of_memory_says_what_to_lower(monkeypatch, make_error, impl):
    backend, spec, params, X, Y, state = make()
    net = impl(backend, spec)

    def explode(*args, **kwargs):
        raise make_error()

    monkeypatch.setattr(torch, "addmm", explode)
    monkeypatch.setattr(torch, "matmul", explode)
    for call in (lambda: net.loss_and_grad(params, X, Y, state), lambda: net.loss(params, X, Y, state)):
        with pytest.raises(devices.DeviceMemoryError, match=r"out of memory on cpu: lower --batch-size, "
                                                            r"--hidden or --num-steps") as info:
            call()
        assert isinstance(info.value, SeqkitError) and "\n" not in str(info.value)


def test_other_runtime_errors_pass_through(monkeypatch):
    backend, spec, params, X, Y, state = make()

    def explode(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(torch, "addmm", explode)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        FusedRNN(backend, spec).loss_and_grad(params, X, Y, state)


def test_out_of_memory_in_training_reaches_the_cli_as_one_line(monkeypatch, corpora_dir, tmp_path):
    def explode(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(FusedRNN, "_forward", explode)
    result = CliRunner().invoke(main, ["run", "--backend", "torch", "--max-tokens", "600", "--hidden", "8",
                                       "--num-steps", "10", "--batch-size", "4", "--epochs", "1",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: out of memory on cpu: lower --batch-size")
    assert "Traceback" not in result.output


# -- end to end ------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fused", "scratch"])
def test_train_on_torch(corpora_dir, impl):
    run = seqkit.train(backend="torch", impl=impl, corpus="timemachine", max_tokens=3000, epochs=2, hidden=32,
                       num_steps=10, batch_size=4, out=None, data_dir=str(corpora_dir), predict_len=10)
    assert run.network.impl == impl and run.backend.device == "cpu"
    first, last = run.history[0]["train_ppl"], run.history[-1]["train_ppl"]
    assert np.isfinite(last) and last < first
    text = run.predict("time traveller", length=20)
    assert text.startswith("time traveller") and len(text) == len("time traveller") + 20


def test_torch_and_numpy_runs_agree(corpora_dir):
    options = dict(corpus="timemachine", max_tokens=3000, epochs=2, hidden=32, num_steps=10, batch_size=4,
                   predict_len=20, val_fraction=0.1)
    a = seqkit.train(backend="torch", **options)
    b = seqkit.train(backend="numpy", **options)
    for row_a, row_b in zip(a.history, b.history):
        assert row_a["train_ppl"] == pytest.approx(row_b["train_ppl"], rel=1e-4)
        assert row_a["val_ppl"] == pytest.approx(row_b["val_ppl"], rel=1e-4)
    assert a.predict() == b.predict()


def test_cli_run(corpora_dir, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--backend", "torch", "--corpus", "timemachine", "--max-tokens", "3000", "--epochs", "2",
        "--hidden", "32", "--num-steps", "10", "--batch-size", "4", "--data-dir", str(corpora_dir),
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "torch" and summary["device"] == "cpu" and summary["impl"] == "fused"
    assert summary["status"] == "completed" and summary["sample"].startswith("time traveller")


@pytest.mark.parametrize("device, message", [
    ("cuda:7" if torch.cuda.is_available() else "cuda", "Error: device "),
    ("quantum", "Error: device 'quantum' not understood; use auto, cpu, cuda or cuda:N"),
])
def test_cli_bad_device_is_one_line(corpora_dir, tmp_path, device, message):
    result = CliRunner().invoke(main, ["run", "--backend", "torch", "--device", device, "--max-tokens", "600",
                                       "--num-steps", "10", "--batch-size", "4", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.output


# -- torch not installed ---------------------------------------------------------------------
@pytest.fixture
def torch_hidden(monkeypatch):
    """`importlib.util.find_spec` reports torch as not installed (the rest is untouched)."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_torch_gives_install_hint(torch_hidden):
    registry = build_registry()
    component = registry.component("backend", "torch")
    assert component.factory.missing() == ["torch"]
    with pytest.raises(UnavailableError, match=r"torch not installed; install with: pip install 'seqkit\[torch\]'"):
        registry.get("backend", "torch")
    assert registry.get("backend", "numpy").name == "numpy"


def test_cli_without_torch(torch_hidden, corpora_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--backend", "torch", "--max-tokens", "600", "--out", str(tmp_path / "a")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'seqkit[torch]'" in lines[0], result.output
    ok = runner.invoke(main, ["run", "--backend", "numpy", "--max-tokens", "600", "--hidden", "8", "--epochs", "1",
                              "--num-steps", "10", "--batch-size", "4", "--out", str(tmp_path / "b")])
    assert ok.exit_code == 0, ok.output


# -- CUDA ------------------------------------------------------------------------------------
@cuda_only
@pytest.mark.parametrize("impl", ["fused", "scratch"])
def test_train_on_cuda_matches_cpu(corpora_dir, impl):
    options = dict(backend="torch", impl=impl, corpus="timemachine", max_tokens=3000, epochs=2, hidden=32,
                   num_steps=10, batch_size=4, predict_len=20)
    gpu = seqkit.train(device="cuda", **options)
    cpu = seqkit.train(device="cpu", **options)
    assert gpu.backend.device.startswith("cuda:")
    assert gpu.history[-1]["train_ppl"] == pytest.approx(cpu.history[-1]["train_ppl"], rel=1e-4)
    assert gpu.predict() == cpu.predict()


def test_nn_rnn_path_holds_cudnn_rnns_to_ieee_float32(monkeypatch):
    """cuDNN would run float32 RNNs in TF32 on recent GPUs; the fused CUDA path must not."""
    cudnn = torch.backends.cudnn
    try:
        before = cudnn.rnn.fp32_precision
    except AttributeError:
        pytest.skip("this torch has only the global cudnn.allow_tf32 switch")
    backend, spec, params, X, Y, state = make(dtype="float32")
    net = ModuleRNN(backend, spec)
    seen = []
    forward = net.rnn.forward

    def spy(*args, **kwargs):
        seen.append(cudnn.rnn.fp32_precision)
        return forward(*args, **kwargs)

    monkeypatch.setattr(net.rnn, "forward", spy)
    net.loss_and_grad(params, X, Y, state)
    net.loss(params, X, Y, state)
    assert seen == ["ieee", "ieee"]
    assert cudnn.rnn.fp32_precision == before


def test_networks_leave_torch_rng_alone():
    backend, spec, params, X, Y, state = make()
    before = torch.random.get_rng_state()
    for impl in (FusedRNN, ModuleRNN):
        impl(backend, spec).loss_and_grad(params, X, Y, state)
    assert torch.equal(torch.random.get_rng_state(), before)
