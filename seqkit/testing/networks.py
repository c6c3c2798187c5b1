"""The network contract, for a backend's hand-written ("fused") network: the same loss,
gradients, final state, evaluation loss and stepping as the generic network on the same backend,
with and without ``loss_from``, and under dropout masks when it declares ``supports_dropout``.

::

    from seqkit.testing import check_network
    def test_my_fused_network():
        backend = make_backend("mybackend", "float64")
        check_network(MyFusedNetwork(backend, spec), spec)
"""

from __future__ import annotations

import numpy as np

from seqkit.dropout import draw_masks
from seqkit.network import GenericNetwork, ModelSpec, Network
from seqkit.testing.cells import make_problem
from seqkit.testing.compare import TOLERANCE, assert_close

DROPOUT_RATE = 0.3


def check_network(network: Network, spec: ModelSpec | None = None, batch_size: int = 3, num_steps: int = 6,
                  seed: int = 0) -> None:
    """``network`` (on its backend, for its spec or ``spec``) against `GenericNetwork` on the same
    backend: `loss_and_grad` (whole minibatch, from step 2 on, and with dropout masks when the
    network supports them), `loss` and `step`, to the backend's float tolerance."""
    backend = network.backend
    spec = spec or network.spec
    problem = make_problem(spec.cell, spec.vocab_size, spec.hidden_size, batch_size, num_steps, spec.embedding_dim,
                           scale=20.0, seed=seed)
    reference = GenericNetwork(backend, problem.spec)
    params, state = problem.on(backend)
    tol = TOLERANCE[backend.dtype]
    name = type(network).__name__
    cases: list[tuple[str, int, dict]] = [("whole minibatch", 0, {}), ("loss_from=2", 2, {})]
    if network.supports_dropout:
        masks = draw_masks(DROPOUT_RATE, seed, 0, batch_size, num_steps, spec.hidden_size, spec.embedding_dim)
        cases += [("dropout", 0, {"masks": masks}), ("dropout, loss_from=2", 2, {"masks": masks})]
    for what, loss_from, extra in cases:
        want = reference.loss_and_grad(params, problem.X, problem.Y, state, loss_from, **extra)
        got = network.loss_and_grad(params, problem.X, problem.Y, state, loss_from, **extra)
        where = f"{name} on {backend.name} ({what})"
        assert abs(got[0] - want[0]) <= tol * max(abs(want[0]), 1.0), f"{where}: loss {got[0]} != {want[0]}"
        assert set(got[1]) == set(want[1]), f"{where}: gradients for {sorted(got[1])}, expected {sorted(want[1])}"
        for key in want[1]:
            assert_close(got[1][key], want[1][key], tol * 10, f"{where}: gradient of {key}")
        for a, b in zip(got[2], want[2]):
            assert_close(a, b, tol, f"{where}: final state")
    loss, final = network.loss(params, problem.X, problem.Y, state)
    want_loss, want_final = reference.loss(params, problem.X, problem.Y, state)
    assert abs(loss - want_loss) <= tol * max(abs(want_loss), 1.0), f"{name}: evaluation loss {loss} != {want_loss}"
    for a, b in zip(final, want_final):
        assert_close(a, b, tol, f"{name}: evaluation's final state")
    logits, _ = network.step(params, problem.X[:, 0], state)
    want_logits, _ = reference.step(params, problem.X[:, 0], state)
    assert_close(np.asarray(logits), np.asarray(want_logits), tol, f"{name}: step's logits")
