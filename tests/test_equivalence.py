"""Same numbers on every backend: 3 SGD steps from one seed on each backend and implementation.

Every configuration starts from the same `ModelSpec.init_params`, reads the same minibatches of The
Time Machine from the sequential sampler (state carried over), clips to norm 1 and steps with lr 1;
losses, gradient norms, the last gradients, the final parameters (float32: 1e-4 relative) and a
greedy continuation (equal text) must match NumPy's autograd path. The configurations are every
registered backend, scratch and fused, on the CPU and on CUDA. Skipped: a framework that is not
installed, a device the machine or the backend lacks (CUDA here), a backend without a fused network
for the cell; nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from seqkit.api import make_network
from seqkit.api import configure, create
from seqkit.dataset import load_dataset
from seqkit.engine import predict
from seqkit.errors import ConfigError
from seqkit.network import ModelSpec
from seqkit.plugins import build_registry
from seqkit_cells.rnn import RNNTanh
from seqkit_clippers.norm import NormClipper
from seqkit_decoders.sampling import GreedyDecoder
from seqkit_samplers.partition import SequentialSampler

SEED, HIDDEN, BATCH, STEPS, UPDATES = 0, 64, 8, 10, 3
RANDOM_SCALE = 30.0  # three small steps leave greedy text all spaces; a bolder random net varies
RTOL = 1e-4
PREFIX, PREDICT_LEN = "time traveller", 30
SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@dataclass
class Trace:
    losses: list[float]
    norms: list[float]
    grads: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    text: str
    random_text: str


def load_problem():
    """Vocabulary, minibatches and initial parameters, from one seed."""
    if not SHARED_CORPORA.is_dir():
        pytest.fail(f"shared corpora not found at {SHARED_CORPORA}")
    registry = build_registry()
    config = configure({"corpus": "timemachine", "data_dir": str(SHARED_CORPORA), "max_tokens": 3000,
                        "val_fraction": 0.0}, registry=registry)
    data = load_dataset(config, create(registry, config, "corpus"))
    rng = np.random.default_rng(SEED)
    batches = list(SequentialSampler().batches(data.train_ids, BATCH, STEPS, rng))[:UPDATES]
    assert len(batches) == UPDATES
    spec = ModelSpec(RNNTanh(), len(data.vocab), HIDDEN)
    init = spec.init_params(np.random.default_rng(SEED))
    return data.vocab, batches, spec, init


@pytest.fixture(scope="module")
def problem():
    return load_problem()


def train_three_steps(backend, network, problem) -> Trace:
    vocab, batches, spec, init = problem
    params = {k: backend.asarray(v) for k, v in init.items()}
    clipper = NormClipper(clip_theta=1.0)
    state = network.init_state(BATCH)
    losses, norms, grads = [], [], {}
    for X, Y in batches:
        loss, grads, state = network.loss_and_grad(params, X, Y, state)
        losses.append(loss)
        raw = {k: backend.to_numpy(g) for k, g in grads.items()}
        grads, norm, _ = clipper.clip(backend, grads)
        norms.append(norm)
        backend.sgd_update(params, grads, 1.0)
        grads = raw
    bold = {k: backend.asarray(v * RANDOM_SCALE) for k, v in init.items()}
    return Trace(losses, norms, grads, {k: backend.to_numpy(v) for k, v in params.items()},
                 greedy(network, params, vocab), greedy(network, bold, vocab))


def greedy(network, params, vocab) -> str:
    ids = predict(network, params, vocab.encode(list(PREFIX)), PREDICT_LEN, GreedyDecoder(),
                  np.random.default_rng(SEED))
    return PREFIX + "".join(vocab.decode(ids))


REGISTRY = build_registry()


def make_backend(name: str, device: str):
    """The registered backend ``name`` on ``device``; skipped only where its framework is not installed
    or the machine has no such device (the backend's own `ConfigError` says which)."""
    component = REGISTRY.component("backend", name)
    if component.unavailable_reason:
        pytest.skip(component.unavailable_reason)
    try:
        return component.load()(device=device, dtype="float32")
    except ConfigError as error:
        if device == "cpu":
            raise
        pytest.skip(str(error))


#: every registered backend, both implementations, on the CPU and on CUDA
CONFIGS = [(name, impl, device) for name in REGISTRY.names("backend")
           for device in ("cpu", "cuda") for impl in ("scratch", "fused")]
#: torch's other two networks, each checked on the device it is not the default on
TORCH_VARIANTS = [("torch", "nn.RNN", "cpu"), ("torch", "bptt", "cuda")]
if "torch" in REGISTRY.names("backend"):
    CONFIGS += TORCH_VARIANTS


@pytest.fixture(scope="module")
def reference(problem) -> Trace:
    backend = make_backend("numpy", "cpu")
    return train_three_steps(backend, make_network(backend, problem[2], "scratch"), problem)


def assert_allclose(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * 0.1 * max(scale, 1e-12), err_msg=what)


@pytest.mark.parametrize("name, impl, device", CONFIGS, ids=["-".join(c) for c in CONFIGS])
def test_three_steps_match_numpy_autograd(problem, reference, name, impl, device):
    backend = make_backend(name, device)
    spec = problem[2]
    if impl == "nn.RNN":  # the CUDA fused network, checked on the CPU too
        from seqkit_torch.module import ModuleRNN

        network = ModuleRNN(backend, spec)
    elif impl == "bptt":  # the CPU fused network, checked on CUDA too
        from seqkit_torch.fused import FusedRNN

        network = FusedRNN(backend, spec)
    else:
        if impl == "fused" and spec.cell.name not in backend.fused_cells():
            pytest.skip(f"backend {name!r} has no fused {spec.cell.name!r} network")
        network = make_network(backend, spec, impl)
        assert network.impl == impl
    trace = train_three_steps(backend, network, problem)

    np.testing.assert_allclose(trace.losses, reference.losses, rtol=RTOL)
    np.testing.assert_allclose(trace.norms, reference.norms, rtol=RTOL)
    assert trace.grads.keys() == reference.grads.keys() == trace.params.keys()
    for key in reference.grads:
        assert trace.grads[key].dtype == np.float32 and trace.params[key].dtype == np.float32, key
        assert_allclose(trace.grads[key], reference.grads[key], f"gradient {key}")
        assert_allclose(trace.params[key], reference.params[key], f"parameter {key}")
    assert trace.text == reference.text
    assert len(trace.text) == len(PREFIX) + PREDICT_LEN
    assert trace.random_text == reference.random_text
    assert len(set(reference.random_text[len(PREFIX):])) > 3, reference.random_text
