"""Batch-1 generation for the built-in vanilla RNN cells, in NumPy, for any backend.

At batch 1 a token costs one matrix-vector product that reads the whole recurrent matrix (1.1 MB
at H=512: it streams from L3, the product is memory-bound); the rest is per-call overhead.
`RNNDecoder` precomputes every token's input projection, keeps ``[W_hh | W_hq]`` side by side so
one product per token gives this token's logits and the next step's recurrent term, and writes
into preallocated vectors. One BLAS thread or two: OpenBLAS splits ``[W_hh | W_hq]^T @ h`` (a
contiguous transposed copy) over two threads, each streaming half the matrix (~11 µs a token
against ~16 µs for ``h @ [W_hh | W_hq]`` on one thread, on an idle 2-core machine), but two
threads are much slower while another runtime's OpenMP threads still spin on the same cores (after
training in the same process). So each session runs its first tokens both ways, timing them, and
keeps the faster (`ThreadChoice`).
It needs only NumPy arrays, so a backend whose own stepping is slow (MXNet) can decode through it
after one copy of the parameters to the host.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import cached_property, lru_cache
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

    @cached_property
    def joint_t(self) -> np.ndarray:
        """``[W_hh | W_hq]^T``, contiguous: the two-thread product's operand (made on first use)."""
        return np.ascontiguousarray(self.joint.T)

    @contextmanager
    def session(self, h0: np.ndarray, max_threads: int = 2) -> Iterator[Callable[[int], np.ndarray]]:
        """Yield ``feed(token) -> logits`` (a fresh (V,) array) starting from the hidden state
        ``h0`` (H,); the state lives inside the session. ``max_threads=1`` keeps the products on
        one BLAS thread without trying two."""
        H, joint, inputs, b_q = self.hidden_size, self.joint, self.inputs, self.b_q
        h = np.array(h0, dtype=joint.dtype).reshape(H)
        out = np.empty(joint.shape[1], dtype=joint.dtype)
        dot = np.dot
        blas_threads = _blas_threads()
        allowed = min(blas_threads, max_threads)
        products = {1: lambda: dot(h, joint, out=out)}
        if allowed >= 2:
            joint_t = self.joint_t
            products[2] = lambda: dot(joint_t, h, out=out)
        products[1]()
        recurrent = out[:H]
        logits = out[H:]
        add = np.add
        activate = np.tanh if not self.relu else (lambda x, out: np.maximum(x, 0, out=out))

        with _threadpools().limit(limits=blas_threads, user_api="blas"):  # restores them on exit
            choice = ThreadChoice(products, allowed)

            def feed(token: int) -> np.ndarray:
                choice.tick()
                add(recurrent, inputs[token], out=h)
                activate(h, out=h)
                choice.product()
                return logits + b_q

            yield feed


def _blas_threads() -> int:
    return min((lib["num_threads"] for lib in _threadpools().info() if lib["user_api"] == "blas"), default=1)


class ThreadChoice:
    """Which BLAS thread count a decoding session runs its products on, chosen on the session's own
    tokens, timed from call to call (so whatever the caller does between tokens counts too): the
    first `TUNING_TOKENS` on one thread, then as many on two, which are kept only if they finish
    sooner. The two-thread stretch is abandoned as soon as it has taken longer than the whole
    one-thread stretch did (right after another runtime's OpenMP work a two-thread product can take
    20x as long). Never more threads than ``allowed`` (the BLAS library's setting)."""

    TUNING_TOKENS = 16

    def __init__(self, products: Mapping[int, Callable[[], object]], allowed: int) -> None:
        self.products = products
        self.times: dict[int, float] = {}
        self.deciding = allowed >= 2
        self.count = 0
        self.start = 0.0
        self._use(1)

    def _use(self, threads: int) -> None:
        self.threads, self.product = threads, self.products[threads]
        _threadpools().limit(limits=threads, user_api="blas")

    def _settle(self, threads: int) -> None:
        self.deciding = False
        if threads != self.threads:
            self._use(threads)

    def tick(self) -> None:
        """Count one token; switch or settle at the end of a timed stretch."""
        if not self.deciding:
            return
        now = time.perf_counter()
        if self.count == 0:
            self.start = now
        self.count += 1
        elapsed = now - self.start
        if self.threads == 2 and elapsed > self.times[1]:
            self._settle(1)
        elif self.count > self.TUNING_TOKENS:
            self.times[self.threads] = elapsed
            if self.threads == 1:
                self.count = 0
                self._use(2)
            else:
                self._settle(2)
