"""Hand-derived batched BPTT for the built-in vanilla RNN cells (``--impl fused`` on NumPy).

Layout is time-major: row ``t * B + b`` of every (T·B, ·) matrix is step ``t`` of sequence ``b``.
The recurrence is the only per-step work (one (B, H) @ (H, H) GEMM each way); the input
projection, output layer, softmax and every weight gradient are single ops over all steps.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
from threadpoolctl import ThreadpoolController

from seqkit.backend import Backend, Params
from seqkit.network import EMBED_PARAM, ModelSpec, Network

# Up to this many distinct ids a row-scatter is a (ids × T·B) one-hot GEMM; beyond, sort + reduceat.
GEMM_SCATTER_MAX = 384


def _scatter_rows(ids: np.ndarray, rows: np.ndarray, num: int) -> np.ndarray:
    """``out[v] = sum of rows[i] where ids[i] == v`` for a (num, width) result, without np.add.at."""
    out = np.zeros((num, rows.shape[1]), dtype=rows.dtype)
    n = ids.shape[0]
    if num <= GEMM_SCATTER_MAX:
        onehot = np.zeros((num, n), dtype=rows.dtype)
        onehot[ids, np.arange(n)] = 1
        np.dot(onehot, rows, out=out)
        return out
    uniq, inverse = np.unique(ids, return_inverse=True)
    if uniq.shape[0] <= GEMM_SCATTER_MAX:
        onehot = np.zeros((uniq.shape[0], n), dtype=rows.dtype)
        onehot[inverse, np.arange(n)] = 1
        out[uniq] = onehot @ rows
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    """The loaded BLAS/OpenMP libraries, inspected once (a fresh inspection costs ~0.3 ms)."""
    return ThreadpoolController()


class FusedRNN(Network):
    """The rnn-tanh / rnn-relu language model with hand-written forward and backward passes.

    Same maths as `seqkit.network.GenericNetwork` with the built-in cells; about the speed of the
    bare GEMMs because buffers are reused and nothing is allocated inside the time loop."""

    impl = "fused"

    def __init__(self, backend: Backend, spec: ModelSpec) -> None:
        super().__init__(backend, spec)
        if spec.cell.name not in ("rnn-tanh", "rnn-relu"):
            raise ValueError(f"FusedRNN supports rnn-tanh and rnn-relu, not {spec.cell.name!r}")
        self.relu = spec.cell.name == "rnn-relu"
        self._buffers: tuple | None = None

    # -- helpers ----------------------------------------------------------------------------
    def _buffers_for(self, T: int, B: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        key = (T, B, dtype)
        if self._buffers is None or self._buffers[0] != key:
            H = self.spec.hidden_size
            self._buffers = (key, (
                np.empty((T + 1, B, H), dtype),  # hidden states, Hs[0] = initial state
                np.empty((T, B, H), dtype),      # pre-activations, then dL/dpre
                np.empty((T, B, H), dtype),      # activation derivative
                np.empty((B, H), dtype),         # recurrent gradient
            ))
        return self._buffers[1]

    def _activate(self, x: np.ndarray, out: np.ndarray) -> None:
        if self.relu:
            np.maximum(x, 0, out=out)
        else:
            np.tanh(x, out=out)

    def _forward(self, params: Params, X: np.ndarray, state: tuple):
        """Run the recurrence; returns (Hs, pre, ids, embedded inputs or None)."""
        B, T = X.shape
        W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
        dtype = W_hh.dtype
        Hs, pre, _, _ = self._buffers_for(T, B, dtype)
        ids = np.ascontiguousarray(X.T, dtype=np.intp).reshape(-1)
        pre2 = pre.reshape(T * B, -1)
        emb = None
        if self.spec.embedding_dim:
            emb = np.take(params[EMBED_PARAM], ids, axis=0)
            np.dot(emb, W_xh, out=pre2)
            pre2 += b_h
        else:
            np.take(W_xh + b_h, ids, axis=0, out=pre2)
        Hs[0] = state[0]
        for t in range(T):
            h = Hs[t + 1]
            np.dot(Hs[t], W_hh, out=h)
            h += pre[t]
            self._activate(h, h)
        return Hs, pre, ids, emb

    @staticmethod
    def _softmax_xent(params: Params, hidden: np.ndarray, targets: np.ndarray, grad: bool):
        """Mean cross-entropy of ``hidden @ W_hq + b_q``; with ``grad`` also dL/dlogits."""
        logits = hidden @ params["W_hq"]
        logits += params["b_q"]
        logits -= logits.max(axis=1, keepdims=True)
        rows = np.arange(targets.shape[0])
        picked = logits[rows, targets]
        probs = np.exp(logits, out=logits)
        sums = probs.sum(axis=1)
        loss = float(np.mean(np.log(sums, dtype=np.float64) - picked))
        if not grad:
            return loss, None
        probs /= sums[:, None]
        probs[rows, targets] -= 1
        probs *= probs.dtype.type(1.0 / targets.shape[0])
        return loss, probs

    # -- Network API ------------------------------------------------------------------------
    def loss_and_grad(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0
    ) -> tuple[float, Params, tuple]:
        B, T = X.shape
        if not 0 <= loss_from < T:
            raise ValueError(f"loss_from={loss_from} must be in [0, {T})")
        Hsz = self.spec.hidden_size
        W_hh, W_hq = params["W_hh"], params["W_hq"]
        Hs, pre, ids, emb = self._forward(params, X, state)
        _, _, deriv, carry = self._buffers[1]
        hidden = Hs[1 + loss_from:].reshape(-1, Hsz)
        targets = np.ascontiguousarray(Y[:, loss_from:].T, dtype=np.intp).reshape(-1)
        loss, dlogits = self._softmax_xent(params, hidden, targets, grad=True)

        grads: Params = {"W_hq": hidden.T @ dlogits, "b_q": dlogits.sum(axis=0)}
        dpre = pre  # reuse: holds dL/dH_t, then dL/dpre_t
        dpre[:loss_from] = 0
        np.dot(dlogits, W_hq.T, out=dpre[loss_from:].reshape(-1, Hsz))
        if self.relu:
            np.greater(Hs[1:], 0, out=deriv)
        else:
            np.multiply(Hs[1:], Hs[1:], out=deriv)
            np.subtract(1, deriv, out=deriv)
        W_hh_T = W_hh.T
        for t in range(T - 1, -1, -1):
            g = dpre[t]
            if t < T - 1:
                g += carry
            g *= deriv[t]
            if t:
                np.dot(g, W_hh_T, out=carry)

        dpre2 = dpre.reshape(T * B, Hsz)
        grads["W_hh"] = Hs[:-1].reshape(T * B, Hsz).T @ dpre2
        grads["b_h"] = dpre2.sum(axis=0)
        if emb is None:
            grads["W_xh"] = _scatter_rows(ids, dpre2, self.spec.vocab_size)
        else:
            grads["W_xh"] = emb.T @ dpre2
            grads[EMBED_PARAM] = _scatter_rows(ids, dpre2 @ params["W_xh"].T, self.spec.vocab_size)
        return loss, grads, (Hs[T].copy(),)

    def loss(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[float, tuple]:
        T = X.shape[1]
        Hs, _, _, _ = self._forward(params, X, state)
        targets = np.ascontiguousarray(Y.T, dtype=np.intp).reshape(-1)
        loss, _ = self._softmax_xent(params, Hs[1:].reshape(-1, self.spec.hidden_size), targets, grad=False)
        return loss, (Hs[T].copy(),)

    def step(self, params: Params, ids: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        ids = np.asarray(ids, dtype=np.intp)
        if self.spec.embedding_dim:
            x = params[EMBED_PARAM][ids] @ params["W_xh"]
        else:
            x = params["W_xh"][ids]
        pre = state[0] @ params["W_hh"]
        pre += x
        pre += params["b_h"]
        h = np.empty_like(pre)
        self._activate(pre, h)
        logits = h @ params["W_hq"]
        logits += params["b_q"]
        return logits, (h,)

    @contextmanager
    def decoding(self, params: Params, state: tuple) -> Iterator[Callable[[int], np.ndarray]]:
        """Generation: every token's input projection precomputed, and one vector-matrix product
        per token, ``h @ [W_hh | W_hq]``, giving this token's logits and the next step's recurrent
        term at once; on one BLAS thread (batch-1 products are latency-bound)."""
        H = self.spec.hidden_size
        if self.spec.embedding_dim:
            inputs = params[EMBED_PARAM] @ params["W_xh"] + params["b_h"]
        else:
            inputs = params["W_xh"] + params["b_h"]
        joint = np.concatenate([params["W_hh"], params["W_hq"]], axis=1)
        b_q = params["b_q"]
        h = np.array(state[0][0], dtype=joint.dtype)
        out = h @ joint

        def feed(token: int) -> np.ndarray:
            pre = out[:H]
            np.add(pre, inputs[token], out=h)
            self._activate(h, h)
            np.dot(h, joint, out=out)
            return out[H:] + b_q

        with _threadpools().limit(limits=1, user_api="blas"):
            yield feed
