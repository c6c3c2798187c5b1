"""Assertions shared by the test modules (the comparison and problem builders come from `seqkit.testing`)."""

from __future__ import annotations

from seqkit import testing
from seqkit.testing import as_numpy, assert_close  # noqa: F401  (re-exported for the test modules)
from seqkit_cells.rnn import RNNRelu, RNNTanh

V, H, B, T, E = 11, 8, 3, 5, 4
CELLS = {"rnn-tanh": RNNTanh, "rnn-relu": RNNRelu}


def assert_clean_error(result, *fragments: str) -> None:
    """A CLI result that failed with exactly one 'Error: ...' line holding ``fragments``, no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def make_problem(backend, cell: str = "rnn-tanh", embedding_dim: int = 0, scale: float = 1.0, seed: int = 0):
    """`seqkit.testing.make_problem` for a built-in cell, on ``backend``: spec, params, X, Y, state."""
    problem = testing.make_problem(CELLS[cell](), V, H, B, T, embedding_dim, scale, seed)
    params, state = problem.on(backend)
    return problem.spec, params, problem.X, problem.Y, state


def interrupted_then_resumed(options: dict, out, stop_at: int):
    """Train with ``options`` into ``out``, stop with SIGTERM when ``should_stop`` is polled the
    ``stop_at``-th time (after that many minibatches), then resume; returns the resumed `Run`."""
    import signal

    import pytest

    import seqkit
    from seqkit.errors import TrainingInterrupted

    calls = {"n": 0}

    def stop() -> int | None:
        calls["n"] += 1
        return signal.SIGTERM if calls["n"] == stop_at else None

    with pytest.raises(TrainingInterrupted):
        seqkit.train(**options, out=str(out), should_stop=stop)
    return seqkit.train(resume=out, progress=False)


def add_entry_point(monkeypatch, name: str, module: str) -> None:
    """Make ``importlib.metadata.entry_points`` list one more ``seqkit`` plugin, ``name = module``,
    as an installed third-party package would."""
    import importlib.metadata

    from seqkit.plugins import ENTRY_POINT_GROUP

    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        eps = list(real(**kwargs))
        if kwargs.get("group") == ENTRY_POINT_GROUP:
            eps.append(importlib.metadata.EntryPoint(name, module, ENTRY_POINT_GROUP))
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
