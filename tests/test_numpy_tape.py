"""`seqkit_numpy.tape`: every op's gradient against finite differences, the deferred weight
products, and the bookkeeping (fresh gradients, untraced aux, one tape at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from seqkit.testing import numeric_gradient
from seqkit_numpy import tape
from seqkit_numpy.tape import Traced, value_and_grad


def _params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"A": rng.normal(size=(4, 3)), "B": rng.normal(size=(3, 5)), "b": rng.normal(size=(5,)),
            "v": rng.normal(size=(3,)), "S": rng.normal(size=(2, 4, 3)), "c": rng.normal(size=(4, 1))}



LOSSES = {
    "add broadcast": lambda p: tape.add(tape.matmul(p["A"], p["B"]), p["b"]),
    "subtract both sides": lambda p: tape.subtract(tape.subtract(2.0, p["A"]), p["c"]),
    "multiply broadcast": lambda p: tape.multiply(p["A"], p["c"]),
    "divide": lambda p: tape.divide(p["A"], tape.add(tape.multiply(p["c"], p["c"]), 1.0)),
    "divide number by array": lambda p: tape.divide(3.0, tape.add(tape.multiply(p["A"], p["A"]), 1.0)),
    "sqrt": lambda p: tape.sqrt(tape.add(tape.multiply(p["A"], p["A"]), 0.5)),
    "tanh": lambda p: tape.tanh(p["A"]),
    "relu": lambda p: tape.relu(p["A"]),
    "sigmoid": lambda p: tape.sigmoid(tape.multiply(p["A"], 3.0)),
    "reshape": lambda p: tape.multiply(tape.reshape(p["A"], (2, 6)), tape.reshape(p["S"][0], (2, 6))),
    "matrix @ vector": lambda p: tape.matmul(p["A"], p["v"]),
    "vector @ matrix": lambda p: tape.matmul(p["v"], p["B"]),
    "vector @ vector": lambda p: tape.matmul(p["v"], tape.tanh(p["v"])),
    "stack @ matrix": lambda p: tape.matmul(p["S"], p["B"]),
    "vector @ stack": lambda p: tape.matmul(p["v"], tape.reshape(tape.concatenate([p["B"], p["B"]], axis=0), (2, 3, 5))),
    "stack @ vector": lambda p: tape.matmul(p["S"], p["v"]),
    "product of products": lambda p: tape.matmul(tape.tanh(p["A"]), tape.tanh(p["B"])),
    "concatenate axis 0": lambda p: tape.concatenate([p["A"], tape.tanh(p["A"]), np.ones((1, 3))], axis=0),
    "concatenate axis 1": lambda p: tape.concatenate([p["A"], p["c"]], axis=1),
    "take repeated": lambda p: tape.take(p["A"], np.array([[3, 3], [0, 1]])),
    "getitem": lambda p: p["A"][1:, ::2],
    "getitem repeated": lambda p: p["A"][np.array([0, 0, 2])],
    "sum axis": lambda p: tape.reduce_sum(p["S"], axis=1),
    "sum keepdims": lambda p: tape.multiply(tape.reduce_sum(p["A"], axis=-1, keepdims=True), p["A"]),
    "operators": lambda p: (1.0 - p["A"] * 2.0 + p["A"] / 3.0 - p["c"]) @ p["B"] + (-p["b"]) / (p["b"] * p["b"] + 1.0),
    "same weight twice (deferred + direct)": lambda p: tape.add(tape.matmul(p["A"], p["B"]),
                                                                tape.matmul(tape.tanh(p["A"]), p["B"])) * p["b"],
    "weight in a product and elementwise": lambda p: tape.add(tape.matmul(p["A"], p["B"]),
                                                              tape.reduce_sum(tape.multiply(p["B"], p["B"]))),
}


def _loss(build):
    return lambda p: tape.reduce_sum(tape.multiply(build(p), build(p)))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_matches_finite_differences(name):
    params = _params()
    loss_fn = _loss(LOSSES[name])
    loss, grads, _ = value_and_grad(lambda p: (loss_fn(p), None), params)
    want = numeric_gradient(lambda p: float(loss_fn(p)), {k: v.copy() for k, v in params.items()})
    assert float(loss) == pytest.approx(float(loss_fn(params)))
    for key, expected in want.items():
        got = grads[key]
        if got is None:
            assert not np.any(expected), f"{name}: {key} has a gradient but the tape found none"
            continue
        assert got.shape == params[key].shape, f"{name}: {key} gradient shape {got.shape}"
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7, err_msg=f"{name}: d/d{key}")


def test_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(3)
    params = {"z": rng.normal(size=(6, 5)) * 3}
    targets = rng.integers(0, 5, 6)
    loss, grads, _ = value_and_grad(lambda p: (tape.cross_entropy(p["z"], targets), None), params)
    z = params["z"]
    log_probs = z - z.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    assert float(loss) == pytest.approx(-log_probs[np.arange(6), targets].mean(), rel=1e-12)
    want = numeric_gradient(lambda p: float(tape.cross_entropy(p["z"], targets)), {"z": z.copy()})["z"]
    np.testing.assert_allclose(grads["z"], want, rtol=1e-6, atol=1e-9)
    shifted = tape.cross_entropy(z + 1e4, targets)
    assert float(shifted) == pytest.approx(float(loss), rel=1e-9)


def test_an_unrolled_recurrence_sums_the_deferred_products_into_one():
    rng = np.random.default_rng(4)
    params = {"W": rng.normal(size=(3, 3)) * 0.5, "U": rng.normal(size=(2, 3))}
    xs = rng.normal(size=(6, 4, 2))

    def loss_fn(p):
        h = np.zeros((4, 3))
        for x in xs:
            h = tape.tanh(tape.add(tape.matmul(h, p["W"]), tape.matmul(x, p["U"])))
        return tape.reduce_sum(h), h

    loss, grads, final = value_and_grad(loss_fn, params)
    assert type(final) is np.ndarray
    want = numeric_gradient(lambda p: float(loss_fn(p)[0]), {k: v.copy() for k, v in params.items()})
    for key in params:
        np.testing.assert_allclose(grads[key], want[key], rtol=1e-6, atol=1e-9, err_msg=key)


def test_gradients_are_fresh_arrays_and_aux_is_untraced():
    params = {"w": np.array([1.0, -2.0, 3.0]), "unused": np.ones(2)}
    loss, grads, aux = value_and_grad(lambda p: (tape.reduce_sum(p["w"]), [p["w"], (tape.tanh(p["w"]),)]),
                                      params)
    assert grads["unused"] is None
    assert type(aux[0]) is np.ndarray and type(aux[1][0]) is np.ndarray
    grads["w"] *= 10
    np.testing.assert_array_equal(params["w"], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(grads["w"], [10.0, 10.0, 10.0])


def test_a_loss_that_ignores_the_parameters_has_no_gradient():
    loss, grads, _ = value_and_grad(lambda p: (np.float64(2.0), None), {"w": np.ones(3)})
    assert float(loss) == 2.0 and grads["w"] is None


def test_values_of_two_tapes_do_not_mix():
    first = tape.Tape().leaf(np.ones(2))
    second = tape.Tape().leaf(np.ones(2))
    with pytest.raises(ValueError, match="two different differentiations"):
        tape.add(first, second)


def test_plain_arrays_pass_through_untraced():
    a = np.arange(6.0).reshape(2, 3)
    for out in (tape.tanh(a), tape.add(a, 1.0), tape.matmul(a, a.T), tape.concatenate([a, a]),
                tape.cross_entropy(a, np.array([0, 2]))):
        assert not isinstance(out, Traced)


def test_float32_stays_float32():
    params = {"w": np.ones((2, 3), dtype=np.float32)}
    loss, grads, _ = value_and_grad(
        lambda p: (tape.cross_entropy(tape.sigmoid(tape.multiply(p["w"], 0.5)), np.array([0, 1])), None), params)
    assert np.asarray(loss).dtype == np.float32 and grads["w"].dtype == np.float32


def test_numpy_operators_defer_to_the_tape_and_numpy_functions_refuse_traced_values():
    params = {"w": np.array([1.0, 2.0])}

    def loss_fn(p):
        scaled = np.array([3.0, 4.0]) * p["w"]  # ndarray on the left: still traced
        return tape.reduce_sum(scaled), None

    _, grads, _ = value_and_grad(loss_fn, params)
    np.testing.assert_array_equal(grads["w"], [3.0, 4.0])
    _, grads, _ = value_and_grad(lambda p: (tape.reduce_sum(np.tanh(p["w"])), None), params)
    np.testing.assert_allclose(grads["w"], 1 - np.tanh([1.0, 2.0]) ** 2)
    for unknown in (np.exp, np.asarray):
        with pytest.raises(TypeError, match="op surface"):
            value_and_grad(lambda p: (unknown(p["w"]), None), params)
