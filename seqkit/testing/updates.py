"""The clipper and optimizer contracts, on every installed backend, against NumPy.

::

    from seqkit.testing import check_clipper, check_optimizer
    def test_my_clipper():
        check_clipper(MyClipper(clip_theta=0.5))
    def test_my_optimizer():
        check_optimizer(MyOptimizer())
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from seqkit.backend import Backend
from seqkit.clipper import Clipper
from seqkit.optimizer import Optimizer, OptimizerState
from seqkit.plugins import Registry
from seqkit.testing.compare import TOLERANCE, assert_close
from seqkit.testing.registry import usable_backends


def _grads(scale: float, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(4, 3)) * scale, "b": rng.normal(size=(3,)) * scale}


def check_clipper(clipper: Clipper, backends: Iterable[str | Backend] | None = None,
                  registry: Registry | None = None) -> None:
    """For small, large and zero gradients on every backend: ``clip(backend, grads)`` returns a dict
    with the same names and shapes, the pre-clip global L2 norm, and whether it changed them (each
    a number, or a 0-d array of the backend); unchanged gradients keep their values, clipping never raises the norm, nothing becomes
    NaN; every backend gives NumPy's numbers (the first backend's)."""
    usable = usable_backends(backends, "float64", registry)
    assert usable, "no backend to check the clipper on"
    for scale in (1e-3, 1.0, 1e3, 0.0):
        g = _grads(scale)
        want_norm = float(np.sqrt(sum((v ** 2).sum() for v in g.values())))
        reference = None
        for backend in usable:
            result = clipper.clip(backend, {k: backend.asarray(v) for k, v in g.items()})
            assert isinstance(result, tuple) and len(result) == 3, "clip must return (grads, norm, clipped)"
            out, norm, clipped = result
            assert isinstance(out, dict) and set(out) == set(g), f"clip must return a dict with keys {sorted(g)}"
            norm, clipped = _number(norm, "norm", float), _number(clipped, "clipped flag", bool)
            assert abs(norm - want_norm) <= 1e-9 * max(want_norm, 1.0), \
                f"{backend.name}: clip reported norm {norm}, the pre-clip global L2 norm is {want_norm}"
            arrays = {k: backend.to_numpy(v) for k, v in out.items()}
            for name, value in arrays.items():
                assert value.shape == g[name].shape, f"clip changed the shape of {name!r}"
                assert np.all(np.isfinite(value)), f"clip made {name!r} non-finite (scale {scale})"
                if not clipped:
                    assert_close(value, g[name], 1e-12, f"{backend.name}: unclipped gradient {name!r}")
            after = float(np.sqrt(sum((v ** 2).sum() for v in arrays.values())))
            assert after <= want_norm * (1 + 1e-9) + 1e-12, f"clipping raised the norm from {want_norm} to {after}"
            if reference is None:
                reference = (backend, arrays, bool(clipped))
            else:
                assert bool(clipped) == reference[2], f"{backend.name} and {reference[0].name} disagree on clipping"
                for name in arrays:
                    assert_close(arrays[name], reference[1][name], TOLERANCE["float64"],
                                 f"{backend.name} vs {reference[0].name}: clipped {name!r}")


def _number(value, what: str, kind: type):
    """``value`` (a number or a 0-d array) as ``kind``; fails when it is neither."""
    if isinstance(value, (bool, np.bool_) if kind is bool else (int, float, np.floating)):
        return kind(value)
    shape = getattr(value, "shape", None)
    assert shape is not None and tuple(shape) in ((), (1,)), \
        f"clip's {what} must be a number or a 0-d array, got {type(value).__name__} {shape}"
    return float(value) if kind is float else bool(value)


def check_optimizer(optimizer: Optimizer, backends: Iterable[str | Backend] | None = None,
                    registry: Registry | None = None, lr: float = 0.05, steps: int = 5) -> None:
    """On every backend: ``init_state`` makes zero slots shaped like the parameters; ``update``
    advances ``state.step`` by one and changes the parameters in the dict; ``steps`` updates on
    the loss ½‖p‖² (gradient p) lower it; every backend gives NumPy's numbers (the first backend's)."""
    usable = usable_backends(backends, "float64", registry)
    assert usable, "no backend to check the optimizer on"
    start = _grads(1.0, seed=1)
    reference = None
    for backend in usable:
        params = {k: backend.asarray(v) for k, v in start.items()}
        state = optimizer.init_state(backend, params)
        assert isinstance(state, OptimizerState), "init_state must return a seqkit.OptimizerState"
        assert set(state.slots) == set(optimizer.slots), f"init_state made slots {sorted(state.slots)}, " \
                                                         f"the optimizer declares {sorted(optimizer.slots)}"
        for slot, arrays in state.slots.items():
            for name, value in arrays.items():
                value = backend.to_numpy(value)
                assert value.shape == start[name].shape and not value.any(), f"slot {slot}.{name} is not zeros"
        losses = [0.5 * sum(float((v ** 2).sum()) for v in start.values())]
        for step in range(1, steps + 1):
            grads = {k: backend.asarray(backend.to_numpy(v)) for k, v in params.items()}
            optimizer.update(backend, params, grads, lr, state)
            assert state.step == step, f"after {step} update(s) state.step is {state.step}"
            current = {k: backend.to_numpy(v) for k, v in params.items()}
            losses.append(0.5 * sum(float((v ** 2).sum()) for v in current.values()))
        assert losses[-1] < losses[0], f"{steps} updates with lr {lr} did not lower ½‖p‖²: {losses}"
        if reference is None:
            reference = (backend, current)
        else:
            for name in current:
                assert_close(current[name], reference[1][name], TOLERANCE["float64"],
                             f"{backend.name} vs {reference[0].name}: parameter {name!r} after {steps} updates")
