"""Assertions shared by the test modules."""

from __future__ import annotations

import numpy as np

from seqkit.network import ModelSpec
from seqkit_cells.rnn import RNNRelu, RNNTanh

V, H, B, T, E = 11, 8, 3, 5, 4
CELLS = {"rnn-tanh": RNNTanh, "rnn-relu": RNNRelu}


def as_numpy(x) -> np.ndarray:
    """A NumPy copy of a NumPy, torch or MXNet array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    elif hasattr(x, "asnumpy"):
        x = x.asnumpy()
    return np.asarray(x)


def assert_close(actual, expected, rtol: float) -> None:
    """Max absolute error within ``rtol`` of the expected array's largest magnitude."""
    actual, expected = as_numpy(actual), as_numpy(expected)
    assert actual.shape == expected.shape
    err = np.max(np.abs(actual - expected)) if actual.size else 0.0
    assert err <= rtol * max(np.max(np.abs(expected)), 1e-12), f"max error {err:.3g}"


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
    """A small spec, params (init scale 0.01 × ``scale``, non-zero biases), a batch and a non-zero state."""
    spec = ModelSpec(CELLS[cell](), V, H, embedding_dim)
    rng = np.random.default_rng(seed)
    params = {k: backend.asarray(v * scale) for k, v in spec.init_params(rng).items()}
    for name in ("b_h", "b_q"):  # zero biases would hide their own gradient paths
        params[name] += backend.asarray(rng.normal(0.0, 0.01 * scale, params[name].shape))
    X = rng.integers(0, V, (B, T))
    Y = rng.integers(0, V, (B, T))
    state = (backend.asarray(rng.normal(0.0, 0.5, (B, H))),)
    return spec, params, X, Y, state
