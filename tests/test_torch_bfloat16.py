"""``--matmul-dtype bfloat16`` on the torch backend: products in bfloat16, everything else in
--dtype; within a documented tolerance of float32; refused where it cannot help."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from seqkit.cli import main  # noqa: E402
from seqkit.errors import ConfigError  # noqa: E402
from seqkit.network import GenericNetwork, ModelSpec  # noqa: E402
from seqkit_cells.rnn import RNNRelu, RNNTanh  # noqa: E402
from seqkit_torch import backend as backend_module  # noqa: E402
from seqkit_torch.backend import TorchBackend  # noqa: E402
from seqkit_torch.fused import FusedRNN  # noqa: E402

#: What the docs promise against the float32 run of the same minibatch (user guide, "Precision").
LOSS_TOL, GRAD_TOL, STATE_TOL = 1e-3, 3e-2, 1e-2


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    """||got - want|| / ||want|| (Frobenius)."""
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


@pytest.fixture
def bfloat16_cpu(monkeypatch):
    """Pretend the CPU multiplies bfloat16 natively: torch computes the same numbers either way
    (emulated where it does not), so the maths is testable on any machine."""
    monkeypatch.setattr(backend_module, "cpu_has_bfloat16", lambda: True)


def _problem(cell, embedding_dim: int, seed: int = 0):
    spec = ModelSpec(cell, 28, 48, embedding_dim, init="pytorch")
    rng = np.random.default_rng(seed)
    init = spec.init_params(rng)
    X, Y = rng.integers(0, 28, (6, 9)), rng.integers(0, 28, (6, 9))
    state = rng.uniform(-0.5, 0.5, (6, 48))
    return spec, init, X, Y, state


def _run(network_cls, matmul_dtype: str, spec, init, X, Y, state, loss_from: int = 0):
    backend = TorchBackend("cpu", "float32", matmul_dtype)
    network = network_cls(backend, spec)
    params = {k: backend.asarray(v) for k, v in init.items()}
    loss, grads, (final,) = network.loss_and_grad(params, X, Y, (backend.asarray(state),), loss_from)
    eval_loss, _ = network.loss(params, X, Y, (backend.asarray(state),))
    return loss, {k: v.numpy().copy() for k, v in grads.items()}, final.numpy(), eval_loss


@pytest.mark.parametrize("cell", [RNNTanh(), RNNRelu()], ids=lambda c: c.name)
@pytest.mark.parametrize("embedding_dim", [0, 8])
@pytest.mark.parametrize("network_cls", [FusedRNN, GenericNetwork], ids=["fused", "scratch"])
def test_bfloat16_products_stay_within_the_tolerance_of_float32(bfloat16_cpu, cell, embedding_dim, network_cls):
    problem = _problem(cell, embedding_dim)
    want_loss, want_grads, want_state, want_eval = _run(network_cls, "float32", *problem, loss_from=2)
    loss, grads, state, eval_loss = _run(network_cls, "bfloat16", *problem, loss_from=2)
    assert loss == pytest.approx(want_loss, abs=LOSS_TOL) and eval_loss == pytest.approx(want_eval, abs=LOSS_TOL)
    assert loss != want_loss, "bfloat16 products gave float32's exact loss: were they cast at all?"
    for name, want in want_grads.items():
        assert grads[name].dtype == np.float32
        error = _relative(grads[name], want)
        assert error < GRAD_TOL, f"{name}: relative error {error:.3g}"
    assert np.abs(state - want_state).max() < STATE_TOL


def test_the_fused_weight_gradient_comes_from_a_bfloat16_product(bfloat16_cpu):
    problem = _problem(RNNTanh(), 0)
    _, low, _, _ = _run(FusedRNN, "bfloat16", *problem)
    _, full, _, _ = _run(FusedRNN, "float32", *problem)

    def representable(g):
        return np.array_equal(g, torch.from_numpy(g).to(torch.bfloat16).float().numpy())

    assert representable(low["W_hh"]) and representable(low["W_hq"])
    assert not representable(full["W_hh"])


def test_fused_and_scratch_agree_in_bfloat16(bfloat16_cpu):
    problem = _problem(RNNTanh(), 0, seed=3)
    fused = _run(FusedRNN, "bfloat16", *problem)
    scratch = _run(GenericNetwork, "bfloat16", *problem)
    assert fused[0] == pytest.approx(scratch[0], abs=LOSS_TOL)
    for name in fused[1]:
        assert _relative(fused[1][name], scratch[1][name]) < GRAD_TOL, name


def test_a_cpu_without_bfloat16_is_refused_with_the_way_out(monkeypatch):
    monkeypatch.setattr(backend_module, "cpu_has_bfloat16", lambda: False)
    with pytest.raises(ConfigError, match="no native bfloat16.*leave --matmul-dtype at float32"):
        TorchBackend("cpu", "float32", "bfloat16")
    assert TorchBackend("cpu", "float32", "float32").product_dtype is None


def test_unknown_matmul_dtype_is_refused():
    with pytest.raises(ConfigError, match="use one of: float32, bfloat16"):
        TorchBackend("cpu", "float32", "float16")


def test_the_option_belongs_to_the_torch_backend(corpora_dir, tmp_path):
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--matmul-dtype", "bfloat16",
                                       "--max-tokens", "600", "--out", str(tmp_path / "a")])
    assert result.exit_code != 0
    assert "matmul" in result.output and "torch" in result.output and "Traceback" not in result.output


def test_cli_trains_with_bfloat16_products_and_resumes_in_float32(bfloat16_cpu, corpora_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--max-tokens", "3000", "--hidden", "32", "--num-steps", "10", "--batch-size", "4",
              "--data-dir", str(corpora_dir), "--out", str(out)]
    result = CliRunner().invoke(main, ["run", "--backend", "torch", "--corpus", "timemachine", "--epochs", "3",
                                       "--matmul-dtype", "bfloat16", "--lr", "1", *common])
    assert result.exit_code == 0, result.output
    assert "(cpu, fused, float32, bfloat16 products)" in result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ppl = [row["train_ppl"] for row in rows if "train_ppl" in row]
    assert len(ppl) == 3 and ppl[-1] < ppl[0]
    config = json.loads((out / "summary.json").read_text())
    assert "bfloat16" in json.dumps(config)
    resumed = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs", "4", "--matmul-dtype", "float32"])
    assert resumed.exit_code == 0, resumed.output
    assert "(cpu, fused, float32)" in resumed.output
