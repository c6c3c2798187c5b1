"""Array comparison for conformance checks: any backend's arrays, one tolerance rule."""

from __future__ import annotations

from typing import Any

import numpy as np

TOLERANCE = {"float64": 1e-6, "float32": 1e-4}


def as_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a NumPy, torch or MXNet array (or anything `np.asarray` takes)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    elif hasattr(x, "asnumpy"):
        x = x.asnumpy()
    return np.asarray(x)


def assert_close(actual: Any, expected: Any, rtol: float, what: str = "array") -> None:
    """Fail unless the shapes agree and the largest absolute error is within ``rtol`` times the
    expected array's largest magnitude (one scale for the whole array, so tiny entries do not
    demand impossible relative accuracy)."""
    actual, expected = as_numpy(actual), as_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    err = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-12)
    assert err <= rtol * scale, f"{what}: max error {err:.3g} exceeds {rtol:g} x {scale:.3g}"
