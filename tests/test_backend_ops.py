"""The op surface every backend promises cells: one contract, checked on each installed backend."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from helpers import assert_close
from seqkit.plugins import build_registry

TOL = {"float64": 1e-6, "float32": 1e-4}


def installed_backends() -> list[str]:
    registry = build_registry()
    return [name for name in ("numpy", "torch", "mxnet")
            if importlib.util.find_spec(name) and registry.component("backend", name).unavailable_reason is None]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", installed_backends())
def test_elementwise_matmul_and_shape_ops_match_numpy(name, dtype):
    ops = build_registry().create("backend", name, device="cpu", dtype=dtype)
    rng = np.random.default_rng(0)
    a, b, bias = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=(4,))
    A, Bm, bias_n = ops.asarray(a), ops.asarray(b), ops.asarray(bias)
    results = {
        "matmul": (ops.matmul(A, Bm), a @ b),
        "add": (ops.add(A, bias_n), a + bias),
        "multiply": (ops.multiply(A, bias_n), a * bias),
        "subtract": (ops.subtract(A, bias_n), a - bias),
        "tanh": (ops.tanh(A), np.tanh(a)),
        "relu": (ops.relu(A), np.maximum(a, 0)),
        "sigmoid": (ops.sigmoid(A), 1 / (1 + np.exp(-a))),
        "reshape": (ops.reshape(A, (2, 6)), a.reshape(2, 6)),
        "concatenate": (ops.concatenate([A, A], axis=1), np.concatenate([a, a], axis=1)),
    }
    for op, (got, want) in results.items():
        got = ops.to_numpy(got)
        assert got.dtype == np.dtype(dtype), op
        assert_close(got, want, TOL[dtype])
    zeros = ops.to_numpy(ops.zeros((2, 5)))
    assert zeros.shape == (2, 5) and zeros.dtype == dtype and not zeros.any()
