"""Reverse-mode differentiation of the NumPy op surface: a tape of the ops one loss makes.

`Tape.leaf` wraps each parameter in a `Traced`; every op below that receives a `Traced` computes
its NumPy value and records, on the tape, how to send a gradient back to its traced inputs. Plain
arrays pass straight through at NumPy speed, so the same functions serve training, evaluation and
generation. `Tape.gradients` then sweeps the tape once, newest op first.

One thing the tape does that a general-purpose autodiff library cannot: a product ``a @ W`` with a
parameter ``W`` does not compute ``a.T @ g`` when its gradient ``g`` arrives. It keeps the pair and,
after the sweep, stacks every pair of that parameter into one product, ``[a_1; a_2; ...].T @ [g_1;
g_2; ...]``. An unrolled recurrence makes one such pair per step; one large product is several times
faster than T small ones plus T accumulations, and gives the same sum (up to float rounding order).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from seqkit.backend import map_leaves

Vjp = Callable[[np.ndarray], np.ndarray]


class Traced:
    """A value computed from the parameters of one `Tape`: its NumPy ``value`` and its place on the
    tape. Cells see it only through the backend's op surface (Python operators work too)."""

    __slots__ = ("value", "tape", "index")

    def __init__(self, value: np.ndarray, tape: "Tape", index: int) -> None:
        self.value = value
        self.tape = tape
        self.index = index

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy ufuncs the tape knows (so ``array * traced`` and ``np.tanh(traced)`` stay traced);
        any other refuses rather than silently dropping the gradient."""
        op = _UFUNCS.get(ufunc)
        if op is None or method != "__call__" or kwargs:
            raise TypeError(_NUMPY_FUNCTION)
        return op(*inputs)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(_NUMPY_FUNCTION)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"Traced({self.value!r})"

    def __add__(self, other: Any) -> "Traced":
        return add(self, other)

    def __radd__(self, other: Any) -> "Traced":
        return add(other, self)

    def __sub__(self, other: Any) -> "Traced":
        return subtract(self, other)

    def __rsub__(self, other: Any) -> "Traced":
        return subtract(other, self)

    def __mul__(self, other: Any) -> "Traced":
        return multiply(self, other)

    def __rmul__(self, other: Any) -> "Traced":
        return multiply(other, self)

    def __truediv__(self, other: Any) -> "Traced":
        return divide(self, other)

    def __rtruediv__(self, other: Any) -> "Traced":
        return divide(other, self)

    def __neg__(self) -> "Traced":
        return multiply(self, -1.0)

    def __getitem__(self, index: Any) -> "Traced":
        return getitem(self, index)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Traced":
        return reduce_sum(self, axis, keepdims)

    def __matmul__(self, other: Any) -> "Traced":
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> "Traced":
        return matmul(other, self)


class Tape:
    """The record of one differentiation: leaves (the parameters) and, per op, its traced inputs
    with the function that maps the op's output gradient to theirs."""

    def __init__(self) -> None:
        # Per index: () for a leaf, else ((input index, vjp or None, rows or None), ...). A None vjp
        # means "leaf weight of a product": the gradient is rows.T @ g, deferred to the end.
        self._inputs: list[tuple] = []
        self._leaves: set[int] = set()

    def leaf(self, value: np.ndarray) -> Traced:
        """Start tracing ``value`` (a parameter whose gradient `gradients` will return)."""
        index = len(self._inputs)
        self._inputs.append(())
        self._leaves.add(index)
        return Traced(value, self, index)

    def is_leaf(self, x: Traced) -> bool:
        return x.index in self._leaves

    def record(self, value: np.ndarray, inputs: tuple) -> Traced:
        index = len(self._inputs)
        self._inputs.append(tuple((x.index, vjp, rows) for x, vjp, rows in inputs))
        return Traced(value, self, index)

    def gradients(self, loss: Any, leaves: Sequence[Traced]) -> list[np.ndarray | None]:
        """d loss / d leaf for each of ``leaves`` (None where the loss does not depend on it)."""
        if not isinstance(loss, Traced):
            return [None] * len(leaves)
        if loss.tape is not self:
            raise ValueError("the loss was traced on another tape")
        grads: list[Any] = [None] * (loss.index + 1)
        owned = [False] * (loss.index + 1)
        deferred: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        grads[loss.index] = np.ones_like(loss.value)
        for index in range(loss.index, -1, -1):
            g = grads[index]
            if g is None or index in self._leaves:
                continue
            grads[index] = None  # intermediates are dropped as soon as they are passed on
            for source, vjp, rows in self._inputs[index]:
                if vjp is None:
                    deferred.setdefault(source, []).append((rows, g))
                    continue
                contribution = vjp(g)
                current = grads[source]
                if current is None:
                    grads[source] = contribution
                elif owned[source]:
                    current += contribution
                else:
                    grads[source] = current + contribution
                    owned[source] = True
        out: list[np.ndarray | None] = []
        for leaf in leaves:
            grad = grads[leaf.index] if leaf.index <= loss.index else None
            pairs = deferred.get(leaf.index)
            if pairs:
                rows = pairs[0][0] if len(pairs) == 1 else np.concatenate([r for r, _ in pairs], axis=0)
                gs = pairs[0][1] if len(pairs) == 1 else np.concatenate([g for _, g in pairs], axis=0)
                product = np.dot(rows.T, gs)
                grad = product if grad is None else product + grad
            elif grad is not None and not owned[leaf.index]:
                grad = np.array(grad, copy=True)
            out.append(grad)
        return out


_NUMPY_FUNCTION = ("a traced value went into a NumPy function the tape cannot differentiate: write the "
                   "cell with the backend's op surface (ops.tanh, ops.matmul, ...)")


def value(x: Any) -> Any:
    """The NumPy value of ``x`` (``x`` itself when it is not traced)."""
    return x.value if type(x) is Traced else x


def _tape_of(*args: Any) -> Tape | None:
    tape = None
    for arg in args:
        if type(arg) is Traced:
            if tape is not None and arg.tape is not tape:
                raise ValueError("values from two different differentiations were combined")
            tape = arg.tape
    return tape


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` down to ``shape`` (undo NumPy broadcasting)."""
    if g.shape == shape:
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def _elementwise(out: np.ndarray, a: Any, b: Any, vjp_a: Callable[[], Vjp], vjp_b: Callable[[], Vjp]) -> Any:
    tape = _tape_of(a, b)
    if tape is None:
        return out
    inputs = []
    if type(a) is Traced:
        shape = a.value.shape
        fa = vjp_a()
        inputs.append((a, lambda g: _unbroadcast(fa(g), shape), None))
    if type(b) is Traced:
        shape_b = b.value.shape
        fb = vjp_b()
        inputs.append((b, lambda g: _unbroadcast(fb(g), shape_b), None))
    return tape.record(out, tuple(inputs))


def add(a: Any, b: Any) -> Any:
    """a + b with broadcasting."""
    return _elementwise(np.add(value(a), value(b)), a, b, lambda: _identity, lambda: _identity)


def subtract(a: Any, b: Any) -> Any:
    """a - b with broadcasting."""
    return _elementwise(np.subtract(value(a), value(b)), a, b, lambda: _identity, lambda: np.negative)


def multiply(a: Any, b: Any) -> Any:
    """a * b with broadcasting."""
    va, vb = value(a), value(b)
    return _elementwise(np.multiply(va, vb), a, b, lambda: lambda g: g * vb, lambda: lambda g: g * va)


def divide(a: Any, b: Any) -> Any:
    """a / b with broadcasting."""
    va, vb = value(a), value(b)
    out = np.divide(va, vb)
    return _elementwise(out, a, b, lambda: lambda g: g / vb, lambda: lambda g: -g * out / vb)


def _identity(g: np.ndarray) -> np.ndarray:
    return g


def _unary(out: np.ndarray, x: Any, vjp: Callable[[], Vjp]) -> Any:
    if type(x) is not Traced:
        return out
    return x.tape.record(out, ((x, vjp(), None),))


def tanh(x: Any) -> Any:
    """Elementwise tanh."""
    out = np.tanh(value(x))
    return _unary(out, x, lambda: lambda g: g * (1.0 - out * out))


def relu(x: Any) -> Any:
    """Elementwise max(x, 0); the gradient at 0 is 0."""
    v = value(x)
    positive = v > 0
    out = v * positive
    return _unary(out, x, lambda: lambda g: g * positive)


def sigmoid(x: Any) -> Any:
    """Elementwise logistic function, computed through tanh (no overflow)."""
    out = 0.5 * (np.tanh(0.5 * value(x)) + 1.0)
    return _unary(out, x, lambda: lambda g: g * out * (1.0 - out))


def sqrt(x: Any) -> Any:
    """Elementwise square root."""
    out = np.sqrt(value(x))
    return _unary(out, x, lambda: lambda g: 0.5 * g / out)


def reshape(x: Any, shape: Sequence[int]) -> Any:
    """``x`` with a new shape."""
    v = value(x)
    old = v.shape
    return _unary(np.reshape(v, tuple(shape)), x, lambda: lambda g: np.reshape(g, old))


def getitem(x: Any, index: Any) -> Any:
    """``x[index]`` (basic or integer-array indexing; repeated indices add up in the gradient)."""
    v = value(x)

    def vjp(g: np.ndarray) -> np.ndarray:
        grad = np.zeros_like(v)
        np.add.at(grad, index, g)
        return grad

    return _unary(v[index], x, lambda: vjp)


def reduce_sum(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """The sum of ``x`` over ``axis`` (every axis when None)."""
    v = value(x)
    out = np.sum(v, axis=axis, keepdims=keepdims)
    axes = tuple(range(v.ndim)) if axis is None else tuple(np.atleast_1d(axis) % max(v.ndim, 1))

    def vjp(g: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.expand_dims(g, axes) if not keepdims else g, v.shape)

    return _unary(np.asarray(out), x, lambda: vjp)


def matmul(a: Any, b: Any) -> Any:
    """Matrix product (2-D, stacks of matrices, or vectors as ``np.matmul`` treats them)."""
    va, vb = value(a), value(b)
    out = np.matmul(va, vb)
    tape = _tape_of(a, b)
    if tape is None:
        return out
    inputs = []
    if type(a) is Traced:
        inputs.append((a, _matmul_left_vjp(va, vb), None))
    if type(b) is Traced:
        if tape.is_leaf(b) and va.ndim == 2 and vb.ndim == 2:
            inputs.append((b, None, va))
        else:
            inputs.append((b, _matmul_right_vjp(va, vb), None))
    return tape.record(out, tuple(inputs))


def _matmul_left_vjp(va: np.ndarray, vb: np.ndarray) -> Vjp:
    if vb.ndim == 1:  # out[..., m] = a[..., m, k] . b[k]  (or a . b, a 0-d out)
        return lambda g: _unbroadcast(np.multiply.outer(g, vb), va.shape)
    if va.ndim == 1:  # out[..., n] = a[k] . b[..., k, n]
        return lambda g: _unbroadcast(np.matmul(vb, g[..., None])[..., 0], va.shape)
    return lambda g: _unbroadcast(np.matmul(g, np.swapaxes(vb, -1, -2)), va.shape)


def _matmul_right_vjp(va: np.ndarray, vb: np.ndarray) -> Vjp:
    if va.ndim == 1:
        if vb.ndim == 1:
            return lambda g: g * va
        return lambda g: _unbroadcast(va[:, None] * g[..., None, :], vb.shape)
    if vb.ndim == 1:
        return lambda g: _unbroadcast(np.matmul(np.swapaxes(va, -1, -2), g[..., None])[..., 0], vb.shape)
    return lambda g: _unbroadcast(np.matmul(np.swapaxes(va, -1, -2), g), vb.shape)


def take(table: Any, ids: np.ndarray) -> Any:
    """Rows of ``table`` picked by integer ``ids`` of any shape."""
    return getitem(table, np.asarray(ids))


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along ``axis``."""
    values = [value(a) for a in arrays]
    out = np.concatenate(values, axis=axis)
    tape = _tape_of(*arrays)
    if tape is None:
        return out
    bounds = np.cumsum([v.shape[axis] for v in values])
    inputs = []
    for array, stop, size in zip(arrays, bounds, (v.shape[axis] for v in values)):
        if type(array) is Traced:
            section = [slice(None)] * out.ndim
            section[axis] = slice(int(stop - size), int(stop))
            inputs.append((array, lambda g, s=tuple(section): g[s], None))
    return tape.record(out, tuple(inputs))


def cross_entropy(logits: Any, targets: np.ndarray) -> Any:
    """Mean softmax cross-entropy of ``logits`` (N, V) against integer ``targets`` (N,), as a 0-d
    array; stable for large logits (the row maximum is subtracted first)."""
    v = value(logits)
    targets = np.asarray(targets).reshape(-1)
    rows = np.arange(targets.shape[0])
    shifted = v - v.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) - shifted[rows, targets]).astype(v.dtype)
    if type(logits) is not Traced:
        return loss

    def vjp(g: np.ndarray) -> np.ndarray:
        grad = exp / total
        grad[rows, targets] -= 1.0
        grad *= g / targets.shape[0]
        return grad

    return logits.tape.record(np.asarray(loss), ((logits, vjp, None),))


def value_and_grad(fn: Callable[[dict[str, Any]], tuple[Any, Any]],
                   params: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray | None], Any]:
    """Call ``fn(traced params) -> (loss, aux)``; return the loss value, the gradient of each
    parameter (None where the loss does not depend on it) and ``aux`` with every value untraced."""
    tape = Tape()
    leaves = {name: tape.leaf(array) for name, array in params.items()}
    loss, aux = fn(leaves)
    found = tape.gradients(loss, list(leaves.values()))
    return value(loss), dict(zip(leaves, found)), map_leaves(value, aux)


_UFUNCS: dict[np.ufunc, Callable[..., Any]] = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide, np.matmul: matmul,
    np.tanh: tanh, np.sqrt: sqrt,
}
