"""H_t = act(X_t W_xh + H_{t-1} W_hh + b_h), written once against the backend op surface."""

from __future__ import annotations

from typing import Any

from seqkit import Cell, ParamSpec


class RNNTanh(Cell):
    """Vanilla RNN: H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)."""

    name = "rnn-tanh"
    description = "vanilla RNN, tanh activation (the lesson's cell)"
    activation = "tanh"

    def param_specs(self, input_size: int, hidden_size: int) -> dict[str, ParamSpec]:
        return {
            "W_xh": ParamSpec((input_size, hidden_size)),
            "W_hh": ParamSpec((hidden_size, hidden_size)),
            "b_h": ParamSpec((hidden_size,), "zeros"),
        }

    def step(self, ops: Any, params: dict[str, Any], x: Any, state: tuple) -> tuple[Any, tuple]:
        (h,) = state
        pre = ops.add(ops.add(ops.matmul(x, params["W_xh"]), ops.matmul(h, params["W_hh"])), params["b_h"])
        h = ops.tanh(pre) if self.activation == "tanh" else ops.relu(pre)
        return h, (h,)


class RNNRelu(RNNTanh):
    """Vanilla RNN with ReLU: H_t = max(0, X_t W_xh + H_{t-1} W_hh + b_h)."""

    name = "rnn-relu"
    description = "vanilla RNN, ReLU activation"
    activation = "relu"
