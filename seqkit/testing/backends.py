"""The backend contract: the op surface, conversion, autodiff and updates, checked against NumPy.

`check_backend` is what every built-in backend's tests run; a third-party backend runs the same::

    from seqkit.testing import check_backend
    def test_my_backend_keeps_the_contract():
        check_backend(MyBackend(device="cpu", dtype="float64"))
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np

from seqkit.backend import Backend, adam_on_ops
from seqkit.testing.compare import TOLERANCE, assert_close

OPS = ("matmul", "add", "multiply", "subtract", "tanh", "relu", "sigmoid", "zeros", "one_hot", "take",
       "concatenate", "reshape", "cross_entropy")


def check_backend(backend: Backend) -> None:
    """Run every part of the backend contract on ``backend`` (float32 or float64, any device)."""
    check_conversion(backend)
    check_ops(backend)
    check_cross_entropy(backend)
    check_autodiff(backend)
    check_updates(backend)


def check_conversion(backend: Backend) -> None:
    """``asarray`` copies, makes floats ``backend.dtype`` and keeps ints integral; ``to_numpy``
    gives a NumPy array of the same values."""
    dtype = np.dtype(backend.dtype)
    src = np.arange(6.0).reshape(2, 3)
    x = backend.asarray(src)
    src[0, 0] = 99.0
    back = backend.to_numpy(x)
    assert type(back) is np.ndarray, f"to_numpy returned {type(back).__name__}, not numpy.ndarray"
    assert back.dtype == dtype, f"asarray of float64 data gave {back.dtype}, expected backend.dtype {dtype}"
    assert back[0, 0] == 0.0, "asarray must copy: changing the NumPy source changed the backend array"
    np.testing.assert_array_equal(back, np.arange(6.0).reshape(2, 3))
    ints = backend.to_numpy(backend.asarray(np.array([3, 0, 2], dtype=np.int32)))
    assert np.issubdtype(ints.dtype, np.integer), f"asarray of ints gave {ints.dtype}; ints must stay ints"
    np.testing.assert_array_equal(ints, [3, 0, 2])


def _reference_ops() -> dict[str, Callable[..., np.ndarray]]:
    return {
        "matmul": np.matmul, "add": np.add, "multiply": np.multiply, "subtract": np.subtract,
        "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    }


def check_ops(backend: Backend) -> None:
    """Every op of the surface gives NumPy's numbers in ``backend.dtype``, with broadcasting for the
    element-wise ones and integer ids of any shape for ``one_hot`` and ``take``."""
    ops, tol, dtype = backend, TOLERANCE[backend.dtype], np.dtype(backend.dtype)
    rng = np.random.default_rng(0)
    a, b, bias = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=(4,))
    A, B, BIAS = ops.asarray(a), ops.asarray(b), ops.asarray(bias)
    ref = _reference_ops()
    results = {
        "matmul": (ops.matmul(A, B), ref["matmul"](a, b)),
        "add": (ops.add(A, BIAS), a + bias),
        "multiply": (ops.multiply(A, BIAS), a * bias),
        "subtract": (ops.subtract(A, BIAS), a - bias),
        "divide": (ops.divide(A, ops.add(ops.multiply(BIAS, BIAS), 1.0)), a / (bias * bias + 1)),
        "divide (number)": (ops.divide(A, 4.0), a / 4.0),
        "sqrt": (ops.sqrt(ops.multiply(A, A)), np.abs(a)),
        "add (same shape)": (ops.add(A, A), a + a),
        "tanh": (ops.tanh(A), np.tanh(a)),
        "relu": (ops.relu(A), ref["relu"](a)),
        "sigmoid": (ops.sigmoid(A), ref["sigmoid"](a)),
        "reshape": (ops.reshape(A, (2, 6)), a.reshape(2, 6)),
        "concatenate axis 0": (ops.concatenate([A, A], axis=0), np.concatenate([a, a], axis=0)),
        "concatenate axis 1": (ops.concatenate([A, ops.asarray(b[:3])], axis=1), np.concatenate([a, b[:3]], axis=1)),
    }
    for op, (got, want) in results.items():
        got = ops.to_numpy(got)
        assert got.dtype == dtype, f"{op} returned {got.dtype}, expected {dtype}"
        assert_close(got, want, tol, op)
    zeros = ops.to_numpy(ops.zeros((2, 5)))
    assert zeros.shape == (2, 5) and zeros.dtype == dtype and not zeros.any(), "zeros((2, 5)) is wrong"

    ids = np.array([[2, 0], [1, 2]])
    hot = ops.to_numpy(ops.one_hot(ops.asarray(ids), 4))
    assert hot.shape == (2, 2, 4) and hot.dtype == dtype, f"one_hot gave {hot.shape} {hot.dtype}, want (2, 2, 4) {dtype}"
    np.testing.assert_array_equal(hot, np.eye(4)[ids], err_msg="one_hot")
    table = np.arange(12.0).reshape(4, 3)
    rows = ops.to_numpy(ops.take(ops.asarray(table), ops.asarray(ids)))
    assert rows.shape == (2, 2, 3) and rows.dtype == dtype, f"take gave {rows.shape} {rows.dtype}, want (2, 2, 3) {dtype}"
    np.testing.assert_array_equal(rows, table[ids], err_msg="take")
    rows1 = ops.to_numpy(ops.take(ops.asarray(table), ops.asarray(np.array([3, 3, 0]))))
    np.testing.assert_array_equal(rows1, table[[3, 3, 0]], err_msg="take with 1-D ids")


def _reference_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(targets)), targets]))


def check_cross_entropy(backend: Backend) -> None:
    """``cross_entropy(logits (N, V), int targets (N,))`` is the mean softmax cross-entropy as a
    one-element (0-d, or (1,) on MXNet) array of ``backend.dtype``, stable for logits shifted by 10^4."""
    ops, tol = backend, TOLERANCE[backend.dtype]
    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(6, 5)) * 3, rng.integers(0, 5, 6)
    want = _reference_cross_entropy(logits, targets)
    got = ops.to_numpy(ops.cross_entropy(ops.asarray(logits), ops.asarray(targets)))
    assert got.size == 1 and got.dtype == np.dtype(backend.dtype), \
        f"cross_entropy must return a scalar {backend.dtype} array, got shape {got.shape} {got.dtype}"
    assert_close(got.reshape(()), want, tol, "cross_entropy")
    shifted = ops.to_numpy(ops.cross_entropy(ops.asarray(logits + 1e4), ops.asarray(targets)))
    assert np.isfinite(shifted), "cross_entropy overflows for large logits: subtract the row maximum first"
    assert_close(shifted.reshape(()), want, 1e-2 if backend.dtype == "float32" else 1e-9, "cross_entropy of shifted logits")


def _composite(ops: Any, params: dict[str, Any], ids: Any, targets: Any) -> tuple[Any, Any]:
    """A loss that uses every differentiable op, so one gradient check covers the surface."""
    x = ops.concatenate([ops.one_hot(ids, 4), ops.take(params["table"], ids)], axis=1)   # (5, 7)
    z = ops.add(ops.matmul(x, params["W"]), params["b"])                                 # (5, 6)
    z = ops.multiply(ops.tanh(z), ops.sigmoid(ops.subtract(z, params["b"])))
    z = ops.add(z, ops.relu(ops.multiply(z, params["b"])))
    return ops.cross_entropy(ops.reshape(z, (10, 3)), targets), (z,)


class _NumpyOps:
    """The op surface in plain float64 NumPy: the reference the composite loss is checked against."""

    matmul, add, multiply, subtract, tanh = np.matmul, np.add, np.multiply, np.subtract, np.tanh

    @staticmethod
    def relu(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)

    @staticmethod
    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-x))

    @staticmethod
    def one_hot(ids: np.ndarray, depth: int) -> np.ndarray:
        return np.eye(depth)[ids]

    @staticmethod
    def take(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return table[ids]

    @staticmethod
    def concatenate(arrays: list, axis: int = 0) -> np.ndarray:
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def reshape(x: np.ndarray, shape: tuple) -> np.ndarray:
        return np.reshape(x, shape)

    @staticmethod
    def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
        return _reference_cross_entropy(logits, targets)


def _composite_problem(seed: int = 2) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {"table": rng.normal(size=(4, 3)), "W": rng.normal(size=(7, 6)), "b": rng.normal(size=(6,))}
    return params, rng.integers(0, 4, 5), rng.integers(0, 3, 10)


def numeric_gradient(fn: Callable[[dict[str, np.ndarray]], float], params: dict[str, np.ndarray],
                     eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central finite differences of a float64 NumPy function of a parameter dict (every entry)."""
    grads = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for i in range(value.size):
            orig = value.flat[i]
            value.flat[i] = orig + eps
            up = fn(params)
            value.flat[i] = orig - eps
            down = fn(params)
            value.flat[i] = orig
            grad.flat[i] = (up - down) / (2 * eps)
        grads[name] = grad
    return grads


def check_autodiff(backend: Backend) -> None:
    """``value_and_grad`` through every op gives the loss as a Python float, gradients equal to
    finite differences of the same loss in NumPy, and its auxiliary output detached; ``detach``
    keeps values."""
    ops, tol = backend, TOLERANCE[backend.dtype]
    params, ids, targets = _composite_problem()
    want_loss, _ = _composite(_NumpyOps, params, ids, targets)
    want_grads = numeric_gradient(lambda p: _composite(_NumpyOps, p, ids, targets)[0], params)
    native = {k: ops.asarray(v) for k, v in params.items()}
    loss, grads, aux = ops.value_and_grad(
        lambda p: _composite(ops, p, ops.asarray(ids), ops.asarray(targets)), native)
    assert isinstance(loss, float), f"value_and_grad must return the loss as a Python float, got {type(loss).__name__}"
    assert abs(loss - want_loss) <= tol * max(abs(want_loss), 1.0), f"loss {loss} != {want_loss}"
    assert set(grads) == set(params), f"gradients for {sorted(grads)}, expected {sorted(params)}"
    for name in params:
        got = ops.to_numpy(grads[name])
        assert got.dtype == np.dtype(backend.dtype), f"gradient of {name} is {got.dtype}, expected {backend.dtype}"
        assert_close(got, want_grads[name], 10 * tol, f"gradient of {name!r}")
    (z,) = aux
    assert_close(ops.to_numpy(z), _composite(_NumpyOps, params, ids, targets)[1][0], tol, "auxiliary output")
    assert_close(ops.to_numpy(ops.detach(native["W"])), params["W"], 0.0 if backend.dtype == "float64" else tol,
                 "detach")


def check_updates(backend: Backend) -> None:
    """``sgd_update`` (in place on the dict), ``global_norm`` (a float), ``scale``, and both
    ``adam_update`` and Adam written on the op surface (`seqkit.backend.adam_on_ops`) give NumPy's
    numbers."""
    ops, tol = backend, TOLERANCE[backend.dtype]
    rng = np.random.default_rng(3)
    p = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))}
    g = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))}

    def native(d: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: ops.asarray(v) for k, v in d.items()}

    params, grads = native(p), native(g)
    ops.sgd_update(params, grads, 0.1)
    for name in p:
        assert_close(ops.to_numpy(params[name]), p[name] - 0.1 * g[name], tol, f"sgd_update of {name!r}")
    norm = ops.global_norm(native(g))
    assert isinstance(norm, float), f"global_norm must return a Python float, got {type(norm).__name__}"
    want_norm = float(np.sqrt(sum((v ** 2).sum() for v in g.values())))
    assert abs(norm - want_norm) <= tol * want_norm, f"global_norm {norm} != {want_norm}"
    scaled = ops.scale(native(g), 0.5)
    assert set(scaled) == set(g), "scale must return every gradient"
    for name in g:
        assert_close(ops.to_numpy(scaled[name]), 0.5 * g[name], tol, f"scale of {name!r}")

    ref_p, ref_m, ref_v = {k: x.copy() for k, x in p.items()}, {k: 0.0 for k in p}, {k: 0.0 for k in p}
    for step in (1, 2):
        for k in p:
            ref_m[k] = 0.9 * ref_m[k] + 0.1 * g[k]
            ref_v[k] = 0.999 * ref_v[k] + 0.001 * g[k] ** 2
            ref_p[k] = ref_p[k] - 0.01 / (1 - 0.9 ** step) * ref_m[k] / (np.sqrt(ref_v[k] / (1 - 0.999 ** step)) + 1e-8)
    rules = {"adam_update": ops.adam_update, "Adam on the op surface": partial(adam_on_ops, ops)}
    for rule, update in rules.items():
        params, m, v = native(p), native({k: np.zeros_like(x) for k, x in p.items()}), \
            native({k: np.zeros_like(x) for k, x in p.items()})
        for step in (1, 2):
            update(params, native(g), m, v, 0.01, 0.9, 0.999, 1e-8, step)
        for name in p:
            assert_close(ops.to_numpy(params[name]), ref_p[name], tol, f"{rule} of {name!r}")
            assert_close(ops.to_numpy(m[name]), ref_m[name], tol, f"{rule}'s m of {name!r}")
            assert_close(ops.to_numpy(v[name]), ref_v[name], tol, f"{rule}'s v of {name!r}")
