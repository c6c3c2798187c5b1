"""A GRU cell (Cho et al., 2014) for seqkit, written once against the backend op surface."""

from __future__ import annotations

from typing import Any

from seqkit import Cell, ParamSpec, hookimpl


class GRUCell(Cell):
    """Gated recurrent unit: update gate Z, reset gate R, candidate state H~.

    Z = sigmoid(X W_xz + H W_hz + b_z), R = sigmoid(X W_xr + H W_hr + b_r),
    H~ = tanh(X W_xh + (R * H) W_hh + b_h), H' = Z * H + (1 - Z) * H~.
    """

    name = "gru"
    description = "gated recurrent unit (example third-party plugin)"

    def param_specs(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        specs = {}
        for gate in ("z", "r", "h"):
            specs[f"W_x{gate}"] = ParamSpec((input_size, hidden_size))
            specs[f"W_h{gate}"] = ParamSpec((hidden_size, hidden_size))
            specs[f"b_{gate}"] = ParamSpec((hidden_size,), "zeros")
        return specs

    def step(self, ops: Any, params: dict[str, Any], x: Any, state: tuple) -> tuple[Any, tuple]:
        (h,) = state

        def affine(gate: str, hidden: Any) -> Any:
            return ops.add(ops.add(ops.matmul(x, params[f"W_x{gate}"]), ops.matmul(hidden, params[f"W_h{gate}"])),
                           params[f"b_{gate}"])

        z = ops.sigmoid(affine("z", h))
        r = ops.sigmoid(affine("r", h))
        candidate = ops.tanh(affine("h", ops.multiply(r, h)))
        h = ops.add(candidate, ops.multiply(z, ops.subtract(h, candidate)))
        return h, (h,)


@hookimpl
def register_cells(register) -> None:
    """Provide the ``gru`` cell."""
    register(GRUCell)
