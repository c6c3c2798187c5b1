"""CUDA graphs for the fused CUDA network's loss and gradients (``--cuda-graphs``).

A minibatch of `seqkit_torch.module.ModuleRNN` launches a few dozen kernels (the one-hot or
embedded inputs, cuDNN's RNN forward and backward, the output layer, the loss, their gradients,
the weight transposes). At small batches their launch cost, not the GPU, sets the pace. A
`CapturedStep` records them once per shape as a CUDA graph and replays it: the host copies the
token ids, the targets, the initial state and any dropout masks into static tensors and launches
one graph.

What a graph fixes at capture, and how it is kept true:

- addresses: the inputs are copied into the step's static tensors; the parameters must be the
  same tensors, updated in place (every built-in optimizer does so). Before each replay the step
  checks their identity and storage and is recaptured when one was replaced.
- shapes: one graph per (steps, batch, first scored step, which masks are given); an epoch's last,
  shorter minibatch gets its own, and at most `MAX_GRAPHS` are kept.
- host values: none enter the captured function; the learning rate, the clipping and the update
  stay outside it, eager.

The first replay of every graph is checked against the eager computation on the same inputs;
on any capture error or a mismatch the network goes back to the eager path for good, with one
warning. The returned gradients are the graph's own output buffers, valid until the next call
(the fit loop uses them at once); the loss and the state are copies.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch

from seqkit.backend import Params

#: Eager runs on a side stream before capture (CUDA graphs' warm-up, which lets cuDNN and the
#: caching allocator settle before anything is recorded).
WARMUP_RUNS = 3
MAX_GRAPHS = 4
#: Largest relative difference (norm of the difference over the norm) allowed between a first
#: replay and the eager computation.
VERIFY_TOLERANCE = 1e-4

Outputs = tuple[torch.Tensor, Params, torch.Tensor]
#: ``compute(params, *inputs)``: the inputs are tensors, or None where an optional one is absent.
Compute = Callable[..., Outputs]
Inputs = tuple["torch.Tensor | None", ...]
#: A recorder takes a zero-argument function and returns its outputs and a replay function that
#: recomputes them into the same tensors.
Recorder = Callable[[Callable[[], Outputs]], tuple[Outputs, Callable[[], None]]]


def cuda_graph_recorder(device: torch.device) -> Recorder:
    """Record with ``torch.cuda.CUDAGraph`` on ``device``: warm-up on a side stream, then capture."""

    def record(fn: Callable[[], Outputs]) -> tuple[Outputs, Callable[[], None]]:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = fn()
        return outputs, graph.replay

    return record


def eager_recorder(fn: Callable[[], Outputs]) -> tuple[Outputs, Callable[[], None]]:
    """A stand-in for a graph on any device: each replay recomputes and copies into the first
    outputs, so callers see the same fixed output tensors a graph gives (used by the CPU tests)."""
    outputs = fn()

    def replay() -> None:
        for kept, new in zip(_flat(outputs), _flat(fn())):
            kept.copy_(new)

    return outputs, replay


def _flat(outputs: Outputs) -> list[torch.Tensor]:
    loss, grads, state = outputs
    return [loss, *(grads[k] for k in sorted(grads)), state]


class CapturedStep:
    """``compute(params, *inputs)`` recorded for one shape and replayed on new inputs."""

    def __init__(self, compute: Compute, params: Params, inputs: Inputs, recorder: Recorder) -> None:
        self.inputs = tuple(None if x is None else x.clone() for x in inputs)
        self.sources = {name: (tensor, tensor.data_ptr()) for name, tensor in params.items()}
        self.outputs, self.replay = recorder(lambda: compute(params, *self.inputs))
        self.verified = False

    def fits(self, params: Params) -> bool:
        """Whether ``params`` are the tensors, at the addresses, the graph reads."""
        return params.keys() == self.sources.keys() and all(
            params[name] is tensor and tensor.data_ptr() == address
            for name, (tensor, address) in self.sources.items())

    def __call__(self, inputs: Inputs) -> Outputs:
        for static, new in zip(self.inputs, inputs):
            if static is not None:
                static.copy_(new)
        self.replay()
        loss, grads, state = self.outputs
        return loss.clone(), dict(grads), state.clone()


class StepGraphs:
    """One network's captured steps, by shape; gives up for good on the first trouble."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.steps: dict[tuple, CapturedStep] = {}
        #: Why graphs were given up (None while they are in use).
        self.given_up: str | None = None

    def run(self, compute: Compute, params: Params, inputs: Inputs, key: tuple) -> Outputs | None:
        """``compute(params, *inputs)`` through the graph for ``key`` (which must tell apart every
        shape and every pattern of absent inputs), captured on first use; None when graphs are
        given up (the caller then computes eagerly)."""
        if self.given_up is not None:
            return None
        try:
            step = self.steps.get(key)
            if step is None or not step.fits(params):
                if len(self.steps) >= MAX_GRAPHS:
                    self.steps.clear()
                step = self.steps[key] = CapturedStep(compute, params, inputs, self.recorder)
            result = step(inputs)
            if not step.verified:
                _verify(result, compute(params, *inputs))
                step.verified = True
            return result
        except Exception as exc:  # noqa: BLE001 - any failure of capture or replay: eager is always right
            self.give_up(f"{type(exc).__name__}: {exc}")
            return None

    def give_up(self, reason: str) -> None:
        self.given_up = reason
        self.steps.clear()
        warnings.warn(f"--cuda-graphs: {reason}; training goes on without CUDA graphs", RuntimeWarning,
                      stacklevel=3)


def _verify(replayed: Outputs, eager: Outputs) -> None:
    """Raise `GraphMismatch` unless a replay gave the eager computation's numbers."""
    (loss_a, grads_a, state_a), (loss_b, grads_b, state_b) = replayed, eager
    if grads_a.keys() != grads_b.keys():
        raise GraphMismatch(f"the replay gave gradients {sorted(grads_a)}, not {sorted(grads_b)}")
    pairs: list[tuple[str, Any, Any]] = [("loss", loss_a, loss_b), ("state", state_a, state_b)]
    pairs += [(f"gradient {name}", grads_a[name], grads_b[name]) for name in sorted(grads_b)]
    for what, a, b in pairs:
        scale = float(torch.linalg.vector_norm(b.double()))
        difference = float(torch.linalg.vector_norm((a - b).double()))
        if not difference <= VERIFY_TOLERANCE * scale + 1e-30:
            raise GraphMismatch(f"the first replay's {what} differs from the eager computation "
                                f"(relative {difference / max(scale, 1e-30):.2e})")


class GraphMismatch(RuntimeError):
    """A replayed graph disagreed with the eager computation."""
