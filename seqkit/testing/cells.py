"""The cell contract: parameter and state shapes, gradients against finite differences on every
installed backend, and the same numbers on every backend.

::

    from seqkit.testing import check_cell
    def test_my_cell_keeps_the_contract():
        check_cell(MyCell())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from seqkit.backend import Backend
from seqkit.cell import Cell, ParamSpec
from seqkit.network import EMBED_PARAM, OUTPUT_PARAMS, GenericNetwork, ModelSpec
from seqkit.plugins import Registry
from seqkit.testing.compare import TOLERANCE, assert_close
from seqkit.testing.registry import usable_backends

VOCAB, HIDDEN, BATCH, STEPS, EMBED = 11, 8, 3, 5, 4


@dataclass
class Problem:
    """A small model and minibatch in NumPy float64: parameters with non-zero biases (init scale
    0.01 × ``scale``), inputs ``X``, targets ``Y`` and a non-zero initial state."""

    spec: ModelSpec
    params: dict[str, np.ndarray]
    X: np.ndarray
    Y: np.ndarray
    state: tuple[np.ndarray, ...]

    def on(self, backend: Backend) -> tuple[dict, tuple]:
        """The parameters and state as ``backend``'s arrays."""
        return ({k: backend.asarray(v) for k, v in self.params.items()},
                tuple(backend.asarray(s) for s in self.state))


def make_problem(cell: Cell, vocab_size: int = VOCAB, hidden_size: int = HIDDEN, batch_size: int = BATCH,
                 num_steps: int = STEPS, embedding_dim: int = 0, scale: float = 50.0, seed: int = 0) -> Problem:
    """A `Problem` for ``cell``: parameters drawn as seqkit draws them, times ``scale`` (large enough
    that every gate is away from zero), zero-initialised ones replaced by small noise so their
    gradient paths are seen, and every state array drawn from normal(0, 0.5)."""
    spec = ModelSpec(cell, vocab_size, hidden_size, embedding_dim)
    rng = np.random.default_rng(seed)
    params = {k: v * scale for k, v in spec.init_params(rng).items()}
    for name, pspec in spec.param_specs().items():
        if pspec.init == "zeros":
            params[name] = rng.normal(0.0, 0.01 * scale, pspec.shape)
    X = rng.integers(0, vocab_size, (batch_size, num_steps))
    Y = rng.integers(0, vocab_size, (batch_size, num_steps))
    state = tuple(rng.normal(0.0, 0.5, shape) for shape in cell.state_shapes(batch_size, hidden_size))
    return Problem(spec, params, X, Y, state)


def check_cell_shapes(cell: Cell, hidden_size: int = HIDDEN) -> None:
    """``param_specs`` names `ParamSpec`s without seqkit's reserved names; ``state_shapes`` is a
    tuple of shape tuples, each starting with the batch size."""
    specs = cell.param_specs(VOCAB, hidden_size)
    assert isinstance(specs, dict) and specs, "param_specs must return a non-empty dict of name -> ParamSpec"
    for name, spec in specs.items():
        assert isinstance(spec, ParamSpec), f"param_specs()[{name!r}] is {spec!r}, not a seqkit.ParamSpec"
        assert spec.init in ("normal", "zeros"), f"parameter {name!r} has init {spec.init!r}: use 'normal' or 'zeros'"
    reserved = set(OUTPUT_PARAMS) | {EMBED_PARAM}
    assert not reserved & specs.keys(), f"param_specs uses seqkit's reserved names {sorted(reserved & specs.keys())}"
    for batch in (1, BATCH):
        shapes = cell.state_shapes(batch, hidden_size)
        assert isinstance(shapes, tuple) and shapes, "state_shapes must return a non-empty tuple of shapes"
        for shape in shapes:
            assert isinstance(shape, tuple) and shape and shape[0] == batch, \
                f"state_shapes({batch}, {hidden_size}) gave {shape!r}: every state array must start with the batch size"


def check_cell_step(cell: Cell, backend: Backend, embedding_dim: int = 0) -> None:
    """One ``step`` on ``backend``: output (batch, hidden) and a new state of ``state_shapes``."""
    problem = make_problem(cell, embedding_dim=embedding_dim)
    params, state = problem.on(backend)
    x = backend.one_hot(backend.asarray(problem.X[:, 0]), VOCAB) if not embedding_dim else \
        backend.take(backend.asarray(problem.params[EMBED_PARAM]), backend.asarray(problem.X[:, 0]))
    result = cell.step(backend, params, x, state)
    assert isinstance(result, tuple) and len(result) == 2, "step must return (output, new_state)"
    out, new_state = result
    assert backend.to_numpy(out).shape == (BATCH, HIDDEN), \
        f"step's output has shape {backend.to_numpy(out).shape}, expected (batch, hidden) = {(BATCH, HIDDEN)}"
    assert isinstance(new_state, tuple), f"step must return the state as a tuple, got {type(new_state).__name__}"
    want = cell.state_shapes(BATCH, HIDDEN)
    got = tuple(backend.to_numpy(s).shape for s in new_state)
    assert got == want, f"step returned state shapes {got}, state_shapes says {want}"


def check_cell_gradients(cell: Cell, backend: Backend, embedding_dim: int = 0, picks: int = 3,
                         eps: float = 1e-6) -> None:
    """Gradients of the unrolled loss (``--impl scratch``) on a float64 ``backend`` equal central
    finite differences for the largest and ``picks`` random entries of every parameter."""
    assert backend.dtype == "float64", "finite differences need a float64 backend"
    problem = make_problem(cell, embedding_dim=embedding_dim, seed=3)
    net = GenericNetwork(backend, problem.spec)
    params, state = problem.on(backend)
    loss_from = 1
    _, grads, _ = net.loss_and_grad(params, problem.X, problem.Y, state, loss_from)
    assert set(grads) == set(problem.params), f"gradients for {sorted(grads)}, expected {sorted(problem.params)}"
    rng = np.random.default_rng(1)
    for name, value in problem.params.items():
        flat = backend.to_numpy(grads[name]).reshape(-1)
        chosen = {int(np.argmax(np.abs(flat)))} | set(rng.integers(0, value.size, picks).tolist())
        for i in sorted(chosen):
            losses = []
            for delta in (eps, -eps):
                moved = value.copy()
                moved.flat[i] += delta
                trial = {**params, name: backend.asarray(moved)}
                losses.append(net.loss(trial, problem.X[:, loss_from:], problem.Y[:, loss_from:],
                                       _advance(net, trial, problem.X[:, :loss_from], state))[0])
            numeric = (losses[0] - losses[1]) / (2 * eps)
            assert abs(flat[i] - numeric) <= 1e-5 * abs(numeric) + 1e-8, \
                f"{backend.name}: gradient of {name}[{i}] is {flat[i]:.8g}, finite differences give {numeric:.8g}"


def _advance(net: GenericNetwork, params: dict, X: np.ndarray, state: tuple) -> tuple:
    for t in range(X.shape[1]):
        _, state = net.step(params, X[:, t], state)
    return state


def check_cell_agrees(cell: Cell, backends: list[Backend], embedding_dim: int = 0) -> None:
    """Loss, gradients, final state and one step's logits are the same on every backend (within
    the float tolerance of the least precise), the first backend being the reference."""
    if len(backends) < 2:
        return
    problem = make_problem(cell, embedding_dim=embedding_dim, seed=5)
    results = []
    for backend in backends:
        net = GenericNetwork(backend, problem.spec)
        params, state = problem.on(backend)
        loss, grads, final = net.loss_and_grad(params, problem.X, problem.Y, state)
        logits, _ = net.step(params, problem.X[:, 0], state)
        results.append((backend, loss, {k: backend.to_numpy(g) for k, g in grads.items()},
                        [backend.to_numpy(s) for s in final], np.asarray(logits)))
    ref_backend, ref_loss, ref_grads, ref_final, ref_logits = results[0]
    for backend, loss, grads, final, logits in results[1:]:
        tol = max(TOLERANCE[backend.dtype], TOLERANCE[ref_backend.dtype])
        where = f"{backend.name} vs {ref_backend.name}"
        assert abs(loss - ref_loss) <= tol * max(abs(ref_loss), 1.0), f"{where}: loss {loss} != {ref_loss}"
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name], tol, f"{where}: gradient of {name!r}")
        for i, (s, r) in enumerate(zip(final, ref_final)):
            assert_close(s, r, tol, f"{where}: final state[{i}]")
        assert_close(logits, ref_logits, tol, f"{where}: step logits")


def check_cell(cell: Cell, backends: Iterable[str | Backend] | None = None, registry: Registry | None = None,
               embedding_dims: Iterable[int] = (0, EMBED)) -> None:
    """The whole cell contract, on ``backends`` (default: every installed backend, float64 CPU),
    with one-hot inputs and with an embedding."""
    check_cell_shapes(cell)
    usable = usable_backends(backends, "float64", registry)
    assert usable, "no backend to check the cell on"
    for embedding_dim in embedding_dims:
        for backend in usable:
            check_cell_step(cell, backend, embedding_dim)
            check_cell_gradients(cell, backend, embedding_dim)
        check_cell_agrees(cell, usable, embedding_dim)
