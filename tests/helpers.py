"""Assertions shared by the test modules."""

from __future__ import annotations

import numpy as np


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
