"""``--cuda-graphs``: the fused CUDA network's loss and gradients through a recorded step.

On the CPU the graph is stood in for by `eager_recorder` (each replay recomputes into the first
outputs, as a graph writes into its fixed buffers), which exercises everything but the capture
itself: static inputs, recapture on new shapes or replaced parameters, the first-replay check and
the fall-back. The real capture runs in the CUDA-only tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from seqkit.dropout import draw_masks
from seqkit.engine import TrainSettings, fit
from seqkit.errors import ConfigError
from seqkit.network import GenericNetwork, ModelSpec
from seqkit.plugins import build_registry
from seqkit_cells.rnn import RNNRelu, RNNTanh
from seqkit_clippers.norm import NormClipper
from seqkit_samplers.partition import SequentialSampler

torch = pytest.importorskip("torch")

from seqkit_torch import graphs as graphs_module  # noqa: E402
from seqkit_torch.graphs import StepGraphs, eager_recorder  # noqa: E402
from seqkit_torch.module import ModuleRNN  # noqa: E402

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
V, H = 11, 8
TOKENS = np.random.default_rng(3).integers(0, V, size=900)


def _backend(device: str = "cpu", **options):
    return build_registry().create("backend", "torch", device=device, dtype="float32", **options)


def _network(backend, cell=RNNTanh, embedding: int = 0, recorder=None):
    spec = ModelSpec(cell(), vocab_size=V, hidden_size=H, embedding_dim=embedding)
    params = {k: backend.asarray(v) for k, v in spec.init_params(np.random.default_rng(1)).items()}
    network = ModuleRNN(backend, spec)
    if recorder is not None:
        network.graphs = StepGraphs(recorder)
    return network, params


class CountingRecorder:
    """`eager_recorder`, counting captures; ``corrupt`` makes every replay add 1 to the loss."""

    def __init__(self, corrupt: bool = False, fail: bool = False) -> None:
        self.captures, self.corrupt, self.fail = 0, corrupt, fail

    def __call__(self, fn):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captures += 1
        outputs, replay = eager_recorder(fn)

        def corrupted():
            replay()
            outputs[0].add_(1.0)

        return outputs, corrupted if self.corrupt else replay


def _minibatches(B: int, T: int, count: int):
    rng = np.random.default_rng(B * 100 + T)
    for _ in range(count):
        X = rng.integers(0, V, size=(B, T))
        yield X, np.roll(X, -1, axis=1)


def _assert_same(a, b):
    (loss_a, grads_a, (state_a,)), (loss_b, grads_b, (state_b,)) = a, b
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_b:
        assert torch.equal(grads_a[name], grads_b[name]), name
    assert torch.equal(state_a, state_b)


@pytest.mark.parametrize("cell, embedding, loss_from", [(RNNTanh, 0, 0), (RNNRelu, 4, 2)])
def test_replayed_steps_give_the_eager_numbers_through_updates(cell, embedding, loss_from):
    backend = _backend()
    recorder = CountingRecorder()
    graphed, params_g = _network(backend, cell, embedding, recorder)
    eager, params_e = _network(backend, cell, embedding)
    state_g = state_e = (torch.zeros(3, H),)
    for X, Y in _minibatches(3, 6, 4):
        got = graphed.loss_and_grad_deferred(params_g, X, Y, state_g, loss_from)
        want = eager.loss_and_grad_deferred(params_e, X, Y, state_e, loss_from)
        _assert_same(got, want)
        backend.sgd_update(params_g, got[1], 0.5)  # in place: the graph reads the new values
        backend.sgd_update(params_e, want[1], 0.5)
        state_g, state_e = got[2], want[2]
    assert recorder.captures == 1 and graphed.graphs.given_up is None
    assert all(step.verified for step in graphed.graphs.steps.values())


def test_returned_loss_and_state_are_copies_and_new_shapes_get_their_own_graph():
    backend = _backend()
    recorder = CountingRecorder()
    network, params = _network(backend, recorder=recorder)
    (X1, Y1), (X2, Y2) = _minibatches(3, 6, 2)
    loss1, _, (state1,) = network.loss_and_grad_deferred(params, X1, Y1, (torch.zeros(3, H),))
    kept = loss1.clone(), state1.clone()
    network.loss_and_grad_deferred(params, X2, Y2, (torch.zeros(3, H),))
    assert torch.equal(loss1, kept[0]) and torch.equal(state1, kept[1])  # not overwritten by the replay
    (X3, Y3), = _minibatches(3, 4, 1)  # an epoch's shorter last minibatch
    network.loss_and_grad_deferred(params, X3, Y3, (torch.zeros(3, H),))
    network.loss_and_grad_deferred(params, X3, Y3, (torch.zeros(3, H),), loss_from=1)
    assert recorder.captures == 3 and len(network.graphs.steps) == 3


def test_a_replaced_parameter_is_recaptured():
    backend = _backend()
    recorder = CountingRecorder()
    network, params = _network(backend, recorder=recorder)
    eager, params_e = _network(backend)
    (X, Y), = _minibatches(2, 5, 1)
    state = (torch.zeros(2, H),)
    network.loss_and_grad_deferred(params, X, Y, state)
    params["W_hh"] = params["W_hh"] * 0.5  # a new tensor: the graph would read the old one
    params_e["W_hh"] = params_e["W_hh"] * 0.5
    _assert_same(network.loss_and_grad_deferred(params, X, Y, state), eager.loss_and_grad_deferred(params_e, X, Y, state))
    assert recorder.captures == 2


@pytest.mark.parametrize("trouble", ["corrupt", "fail"])
def test_a_wrong_replay_or_a_failed_capture_falls_back_to_eager_for_good(trouble):
    backend = _backend()
    recorder = CountingRecorder(**{trouble: True})
    network, params = _network(backend, recorder=recorder)
    eager, params_e = _network(backend)
    batches = list(_minibatches(2, 5, 3))
    state = (torch.zeros(2, H),)
    with pytest.warns(RuntimeWarning, match="--cuda-graphs: .*training goes on without CUDA graphs"):
        got = network.loss_and_grad_deferred(params, *batches[0], state)
    _assert_same(got, eager.loss_and_grad_deferred(params_e, *batches[0], state))
    assert network.graphs.given_up and not network.graphs.steps
    expected = "differs from the eager computation" if trouble == "corrupt" else "operation not permitted"
    assert expected in network.graphs.given_up
    captures = recorder.captures
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning, not one per minibatch
        for X, Y in batches[1:]:
            _assert_same(network.loss_and_grad_deferred(params, X, Y, state),
                         eager.loss_and_grad_deferred(params_e, X, Y, state))
    assert recorder.captures == captures


@pytest.mark.parametrize("embedding", [0, 4])
def test_dropout_masks_are_graph_inputs_like_the_ids(embedding):
    backend = _backend()
    recorder = CountingRecorder()
    graphed, params_g = _network(backend, embedding=embedding, recorder=recorder)
    eager, params_e = _network(backend, embedding=embedding)
    state_g = state_e = (torch.zeros(3, H),)
    for update, (X, Y) in enumerate(_minibatches(3, 6, 4)):
        masks = draw_masks(0.3, 0, update, 3, 6, H, embedding)  # new masks every minibatch
        got = graphed.loss_and_grad_deferred(params_g, X, Y, state_g, masks=masks)
        want = eager.loss_and_grad_deferred(params_e, X, Y, state_e, masks=masks)
        _assert_same(got, want)
        backend.sgd_update(params_g, got[1], 0.5)
        backend.sgd_update(params_e, want[1], 0.5)
        state_g, state_e = got[2], want[2]
    graphed.loss_and_grad_deferred(params_g, X, Y, state_g)  # without masks: another graph
    assert recorder.captures == 2 and graphed.graphs.given_up is None


def test_fit_with_graphs_matches_fit_without():
    histories, finals = [], []
    for recorder in (CountingRecorder(), None):
        backend = _backend()
        network, params = _network(backend, recorder=recorder)
        settings = TrainSettings(epochs=2, batch_size=4, num_steps=7, lr=1.0)
        histories.append(fit(network, params, TOKENS, SequentialSampler(), NormClipper(0.3), settings,
                             np.random.default_rng(0)))
        finals.append(params)
    for a, b in zip(*histories):
        assert {k: a[k] for k in ("train_ppl", "grad_norm", "clipped_fraction")} == \
            {k: b[k] for k in ("train_ppl", "grad_norm", "clipped_fraction")}
    for name in finals[0]:
        assert torch.equal(finals[0][name], finals[1][name])


def test_cuda_graphs_are_refused_off_cuda_and_for_the_generic_network():
    with pytest.raises(ConfigError, match=r"--cuda-graphs needs a CUDA device, and this run is on cpu"):
        _backend(cuda_graphs=True)
    backend = _backend()
    backend.cuda_graphs = True  # as on CUDA: what the run's network is checked for
    spec = ModelSpec(RNNTanh(), vocab_size=V, hidden_size=H)
    with pytest.raises(ConfigError, match=r"applies to the fused network .* --impl scratch"):
        backend.check_network(GenericNetwork(backend, spec), 0.0)
    backend.check_network(ModuleRNN(backend, spec), 0.0)
    backend.check_network(ModuleRNN(backend, spec), 0.1)


def test_the_cuda_recorder_warms_up_before_capturing(monkeypatch):
    """The CUDA recorder's order of calls, with torch.cuda's stream and graph objects stood in for."""
    events = []

    class Stream:
        def __init__(self, device):
            events.append("stream")

        def wait_stream(self, other):
            events.append("wait")

    class Graph:
        def replay(self):
            events.append("replay")

    class Context:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            events.append(f"enter {self.name}")

        def __exit__(self, *exc):
            events.append(f"exit {self.name}")

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream(device))
    monkeypatch.setattr(torch.cuda, "stream", lambda s: Context("side stream"))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", lambda g: Context("capture"))

    def fn():
        events.append("run")
        return "outputs"

    outputs, replay = graphs_module.cuda_graph_recorder(torch.device("cuda"))(fn)
    replay()
    warmup = ["run"] * graphs_module.WARMUP_RUNS
    assert outputs == "outputs"
    assert events == ["stream", "stream", "wait", "enter side stream", *warmup, "exit side stream",
                      "stream", "wait", "enter capture", "run", "exit capture", "replay"]


@cuda_only
@pytest.mark.parametrize("embedding", [0, 4])
def test_cuda_graph_replays_match_the_eager_path_on_the_device(embedding):
    backend, eager_backend = _backend("cuda", cuda_graphs=True), _backend("cuda")
    network, params = _network(backend, embedding=embedding)
    eager, params_e = _network(eager_backend, embedding=embedding)
    state = state_e = (torch.zeros(4, H, device="cuda"),)
    for X, Y in _minibatches(4, 7, 5):
        got = network.loss_and_grad_deferred(params, X, Y, state)
        want = eager.loss_and_grad_deferred(params_e, X, Y, state_e)
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
        for name in want[1]:
            torch.testing.assert_close(got[1][name], want[1][name], rtol=1e-4, atol=1e-6)
        backend.sgd_update(params, got[1], 0.5)
        eager_backend.sgd_update(params_e, want[1], 0.5)
        state, state_e = got[2], want[2]
    assert network.graphs.given_up is None, network.graphs.given_up
    assert len(network.graphs.steps) == 1


@cuda_only
def test_cuda_graph_fit_matches_eager_fit_on_the_device():
    histories = []
    for graphs in (True, False):
        backend = _backend("cuda", cuda_graphs=graphs)
        network, params = _network(backend)
        settings = TrainSettings(epochs=2, batch_size=4, num_steps=7, lr=1.0)
        histories.append(fit(network, params, TOKENS, SequentialSampler(), NormClipper(0.3), settings,
                             np.random.default_rng(0)))
        if graphs:
            assert network.graphs.given_up is None, network.graphs.given_up
    for a, b in zip(*histories):
        assert a["train_ppl"] == pytest.approx(b["train_ppl"], rel=1e-5)
