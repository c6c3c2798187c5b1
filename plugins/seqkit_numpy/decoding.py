"""Batch-1 generation for the built-in vanilla RNN cells, in NumPy, for any backend.

At batch 1 a token costs one vector-matrix product that reads the whole recurrent matrix; the rest
is per-call overhead. `RNNDecoder` precomputes every token's input projection, keeps
``[W_hh | W_hq]`` side by side so one product per token gives this token's logits and the next
step's recurrent term, writes into preallocated vectors, and runs on one BLAS thread (a second
thread only adds synchronisation at this size, and is much slower while another runtime's OpenMP
threads still spin on the same cores). It needs only NumPy arrays, so a backend whose own stepping
is slow (MXNet) can decode through it after one copy of the parameters to the host.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator, Mapping

import numpy as np
from threadpoolctl import ThreadpoolController

EMBED_PARAM = "W_embed"


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    """The loaded BLAS/OpenMP libraries, inspected once (a fresh inspection costs ~0.3 ms)."""
    return ThreadpoolController()


class RNNDecoder:
    """Greedy/sampled generation state for ``h_t = act(x_t W_xh + h_{t-1} W_hh + b_h)``,
    ``logits_t = h_t W_hq + b_q`` from NumPy parameters (the core's names; ``W_embed`` when
    ``embedded``). Float32 or float64, taken from ``W_hh``."""

    def __init__(self, params: Mapping[str, np.ndarray], relu: bool = False, embedded: bool = False) -> None:
        W_hh = np.asarray(params["W_hh"])
        dtype = W_hh.dtype if W_hh.dtype.kind == "f" else np.dtype(np.float32)
        W_xh = np.asarray(params["W_xh"], dtype=dtype)
        b_h = np.asarray(params["b_h"], dtype=dtype)
        if embedded:
            self.inputs = np.asarray(params[EMBED_PARAM], dtype=dtype) @ W_xh + b_h
        else:
            self.inputs = W_xh + b_h
        self.joint = np.ascontiguousarray(np.concatenate([W_hh.astype(dtype, copy=False),
                                                          np.asarray(params["W_hq"], dtype=dtype)], axis=1))
        self.b_q = np.asarray(params["b_q"], dtype=dtype)
        self.hidden_size = W_hh.shape[0]
        self.relu = relu

    @contextmanager
    def session(self, h0: np.ndarray) -> Iterator[Callable[[int], np.ndarray]]:
        """Yield ``feed(token) -> logits`` (a fresh (V,) array) starting from the hidden state
        ``h0`` (H,); the state lives inside the session."""
        H, joint, inputs, b_q = self.hidden_size, self.joint, self.inputs, self.b_q
        h = np.array(h0, dtype=joint.dtype).reshape(H)
        out = h @ joint
        recurrent = out[:H]
        logits = out[H:]
        add, dot = np.add, np.dot
        activate = np.tanh if not self.relu else (lambda x, out: np.maximum(x, 0, out=out))

        def feed(token: int) -> np.ndarray:
            add(recurrent, inputs[token], out=h)
            activate(h, out=h)
            dot(h, joint, out=out)
            return logits + b_q

        with _threadpools().limit(limits=1, user_api="blas"):
            yield feed
