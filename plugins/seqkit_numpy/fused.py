"""Hand-derived batched BPTT for the built-in vanilla RNN cells (``--impl fused`` on NumPy).

Layout is time-major: row ``t * B + b`` of every (T·B, ·) matrix is step ``t`` of sequence ``b``.
The recurrence is the only per-step work: one GEMM forward, ``H_t = act(H_{t-1} W_hh + x_t)``, and
one GEMM backward. While the vocabulary is small, the backward GEMM also does the output layer's
input gradient: a buffer ``Z`` holds, for each step, ``[dlogits_t | dpre_{t+1}]`` side by side, so
``Z[t+1] @ [W_hq^T; W_hh^T]`` is the whole gradient reaching ``H_t``; with a large one that
gradient is one product over all steps. The input projection (a row gather for one-hot inputs),
the output layer with its softmax cross-entropy, and every weight gradient are single ops over all
steps, reading ``Z`` in place. Nothing is allocated inside the time loops.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from seqkit.backend import Backend, Params
from seqkit.dropout import DropoutMasks
from seqkit.network import EMBED_PARAM, ModelSpec, Network
from seqkit_numpy.decoding import RNNDecoder

# Up to this many distinct ids a row-scatter is a (ids × T·B) one-hot GEMM; beyond, sort + reduceat.
GEMM_SCATTER_MAX = 384
# One GEMM gives every weight gradient while (input width + vocabulary) * this <= H.
JOINT_GEMM_MAX_FRACTION = 4


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


def _time_major(ids: np.ndarray) -> np.ndarray:
    """(B, T) ids -> flat (T·B,) intp, row ``t * B + b``."""
    return np.ascontiguousarray(ids.T, dtype=np.intp).reshape(-1)


# Padding of a staging row: a transpose reading rows a power of two bytes apart (W_hh at H=512:
# 2 KiB) runs 3x slower from cache set conflicts.
STAGING_PAD = 16


def _transpose_into(blocks: tuple[np.ndarray, ...], staged: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = [blocks side by side]^T``, C-order, through ``staged`` (rows × at least their
    total width + `STAGING_PAD`). OpenBLAS runs the per-step products with a Fortran-order operand
    up to 40% slower, so the backward multiplies by this copy rather than by a transposed view."""
    col = 0
    for block in blocks:
        staged[:, col:col + block.shape[1]] = block
        col += block.shape[1]
    np.copyto(out, staged[:, :col].T)
    return out


def _staging(rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    width = cols + STAGING_PAD
    if width * np.dtype(dtype).itemsize % 1024 == 0:  # the padding itself landed on a multiple of 1 KiB
        width += STAGING_PAD
    return np.empty((rows, width), dtype)


def _transposed(matrix: np.ndarray) -> np.ndarray:
    """A fresh C-order copy of ``matrix.T`` (see `_transpose_into`)."""
    rows, cols = matrix.shape
    return _transpose_into((matrix,), _staging(rows, cols, matrix.dtype), np.empty((cols, rows), matrix.dtype))


def joint_gradient_gemm(spec: ModelSpec) -> bool:
    """Whether every weight gradient comes from one GEMM (see `FusedRNN`): worth it while the
    wasted (inputs × vocabulary) block it also computes is small next to the (H × H) one."""
    return (spec.input_size + spec.vocab_size) * JOINT_GEMM_MAX_FRACTION <= spec.hidden_size


class _Forward:
    """Forward buffers for one (T, B, dtype).

    ``E[s] = [H_s | x_s]`` (B, H + X): the hidden state after ``s`` steps (``H_0`` the initial
    state) and, on the joint-gradient path (X = input width, else 0), step ``s``'s input vector
    (one-hot or embedded; zero at ``s = T``). ``xproj`` holds every step's ``x_t W_xh + b_h``."""

    def __init__(self, T: int, B: int, H: int, X: int, dtype: np.dtype) -> None:
        self.key = (T, B, dtype)
        self.E = np.zeros((T + 1, B, H + X), dtype)
        self.Hs = self.E[:, :, :H]
        self.inputs = self.E[:T, :, H:].reshape(T * B, X)
        self.xproj = np.empty((T, B, H), dtype)
        self.step_out = np.empty((B, H), dtype)


class _Backward:
    """Backward buffers for one (T, B, dtype).

    ``Z[s] = [dlogits_{s-1} | dpre_s]`` (B, V + H): the output-layer gradient of step ``s - 1``
    and the pre-activation gradient of step ``s``, both of which pair with ``H_s`` in the weight
    gradients. ``Z[0, :, :V]`` and ``Z[T, :, V:]`` stay zero. ``W_back_T`` is the backward
    recurrence's right operand, stored C-order (see `_transpose_into`): on the joint path
    ``[W_hq | W_hh]^T`` (V + H, H), so that ``Z[t + 1] @ W_back_T`` is the whole gradient reaching
    ``H_t``; otherwise ``W_hh^T``, and ``from_output`` holds ``dlogits_t W_hq^T`` for every step."""

    def __init__(self, T: int, B: int, H: int, V: int, dtype: np.dtype, joint: bool) -> None:
        self.key = (T, B, dtype)
        self.Z = np.zeros((T + 1, B, V + H), dtype)
        self.dlogits = self.Z[1:, :, :V]
        self.dpre = self.Z[:T, :, V:]
        self.deriv = np.empty((T, B, H), dtype)
        self.dH = np.empty((B, H), dtype)
        width = V + H if joint else H
        self.staged = _staging(H, width, dtype)
        self.W_back_T = np.empty((width, H), dtype)
        if not joint:
            self.from_output = np.empty((T, B, H), dtype)


class FusedRNN(Network):
    """The rnn-tanh / rnn-relu language model with hand-written forward and backward passes.

    Same maths as `seqkit.network.GenericNetwork` with the built-in cells; close to the speed of
    the bare GEMMs because buffers are reused and nothing is allocated inside the time loops.

    Per step there is one GEMM each way: forward ``H_{t-1} W_hh`` (plus the precomputed input
    projection, then the activation in place), backward ``dpre_{t+1} W_hh^T``. While the vocabulary
    and the input width are small next to H (`joint_gradient_gemm`), the output layer's input
    gradient rides along in that GEMM (``[dlogits_t | dpre_{t+1}] [W_hq | W_hh]^T``), the hidden
    states are stored beside the inputs as ``[H_s | x_s]``, and a single GEMM
    ``[H | X]^T [dlogits | dpre]`` gives dW_hq, dW_hh and dW_xh at once, returned as views into its
    result. Otherwise the output layer's input gradient is one product over all steps (a per-step
    K of V + H would cost more than it saves) and the weight gradients are three products (dW_xh a
    one-hot GEMM or sorted scatter). Gradients and states handed out are fresh arrays: a later call does
    not overwrite them."""

    impl = "fused"
    supports_dropout = True

    def __init__(self, backend: Backend, spec: ModelSpec) -> None:
        super().__init__(backend, spec)
        if spec.cell.name not in ("rnn-tanh", "rnn-relu"):
            raise ValueError(f"FusedRNN supports rnn-tanh and rnn-relu, not {spec.cell.name!r}")
        self.relu = spec.cell.name == "rnn-relu"
        self.joint = joint_gradient_gemm(spec)
        self._fwd: _Forward | None = None
        self._bwd: _Backward | None = None

    # -- helpers ----------------------------------------------------------------------------
    def _forward_buffers(self, T: int, B: int, dtype: np.dtype) -> _Forward:
        if self._fwd is None or self._fwd.key != (T, B, dtype):
            extra = self.spec.input_size if self.joint else 0
            self._fwd = _Forward(T, B, self.spec.hidden_size, extra, dtype)
        return self._fwd

    def _backward_buffers(self, T: int, B: int, dtype: np.dtype) -> _Backward:
        if self._bwd is None or self._bwd.key != (T, B, dtype):
            self._bwd = _Backward(T, B, self.spec.hidden_size, self.spec.vocab_size, dtype, self.joint)
        return self._bwd

    def _activate(self, x: np.ndarray, out: np.ndarray) -> None:
        if self.relu:
            np.maximum(x, 0, out=out)
        else:
            np.tanh(x, out=out)

    def _forward(self, params: Params, ids: np.ndarray, B: int, state: tuple, keep_inputs: bool,
                 drop_inputs: np.ndarray | None = None,
                 deriv: np.ndarray | None = None) -> tuple[_Forward, np.ndarray | None]:
        """Run the recurrence over time-major ``ids``; returns the buffers (``Hs`` filled, and with
        ``keep_inputs`` on the joint path the input vectors beside them) and the embedded inputs
        (None for one-hot inputs), multiplied by ``drop_inputs`` (T·B, E) when given. ``deriv``
        (T, B, H), when given, receives each step's activation derivative while that step's
        states are still in cache."""
        W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
        T = ids.shape[0] // B
        buf = self._forward_buffers(T, B, W_hh.dtype)
        Hs, xproj, out = buf.Hs, buf.xproj, buf.step_out
        xproj2 = xproj.reshape(T * B, -1)
        emb = None
        if self.spec.embedding_dim:
            emb = np.take(params[EMBED_PARAM], ids, axis=0)
            if drop_inputs is not None:
                emb *= drop_inputs
            np.dot(emb, W_xh, out=xproj2)
            xproj2 += b_h
        else:
            np.take(W_xh + b_h, ids, axis=0, out=xproj2)  # one-hot @ W_xh + b_h is a row gather
        if keep_inputs and self.joint:
            if emb is None:
                buf.inputs[...] = 0
                buf.inputs[np.arange(T * B), ids] = 1
            else:
                buf.inputs[...] = emb
        Hs[0] = state[0]
        for t in range(T):
            h = Hs[t + 1]
            np.dot(Hs[t], W_hh, out=out)
            np.add(out, xproj[t], out=h)
            self._activate(h, h)
            if deriv is not None:
                self._derivative(h, deriv[t])
        return buf, emb

    def _derivative(self, h: np.ndarray, out: np.ndarray) -> None:
        """The activation's derivative, from its output ``h``: 1 - h² for tanh, h > 0 for ReLU."""
        if self.relu:
            np.greater(h, 0, out=out)
        else:
            np.multiply(h, h, out=out)
            np.subtract(1, out, out=out)

    @staticmethod
    def _backward_steps(from_output: np.ndarray, deriv: np.ndarray, W_hh_T: np.ndarray, dpre: np.ndarray,
                        dH: np.ndarray) -> None:
        """``dpre_t = (from_output_t + dpre_{t+1} W_hh^T) * deriv_t`` for t = T-1 down to 0, where
        ``from_output_t`` is the gradient reaching ``H_t`` from the output layer."""
        T = deriv.shape[0]
        np.multiply(from_output[T - 1], deriv[T - 1], out=dpre[T - 1])
        for t in range(T - 2, -1, -1):
            np.dot(dpre[t + 1], W_hh_T, out=dH)
            dH += from_output[t]
            np.multiply(dH, deriv[t], out=dpre[t])

    @staticmethod
    def _softmax_xent(logits: np.ndarray, targets: np.ndarray, grad: bool) -> float:
        """Mean cross-entropy of ``logits`` (N, V), already holding ``hidden @ W_hq + b_q``; with
        ``grad`` the array is overwritten in place by dL/dlogits."""
        logits -= logits.max(axis=1, keepdims=True)
        rows = np.arange(targets.shape[0])
        picked = logits[rows, targets]
        probs = np.exp(logits, out=logits)
        sums = probs.sum(axis=1)
        loss = float(np.mean(np.log(sums, dtype=np.float64) - picked))
        if grad:
            n = targets.shape[0]
            np.divide(probs.dtype.type(1.0 / n), sums, out=sums)
            probs *= sums[:, None]
            probs[rows, targets] -= probs.dtype.type(1.0 / n)
        return loss

    # -- Network API ------------------------------------------------------------------------
    def loss_and_grad(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0,
        masks: DropoutMasks | None = None,
    ) -> tuple[float, Params, tuple]:
        B, T = X.shape
        if not 0 <= loss_from < T:
            raise ValueError(f"loss_from={loss_from} must be in [0, {T})")
        if masks is not None:
            return self._loss_and_grad_dropout(params, X, Y, state, loss_from, masks)
        Hsz, V = self.spec.hidden_size, self.spec.vocab_size
        W_hh, W_hq = params["W_hh"], params["W_hq"]
        ids = _time_major(X)
        bwd = self._backward_buffers(T, B, W_hh.dtype)
        fwd, emb = self._forward(params, ids, B, state, keep_inputs=True, deriv=bwd.deriv)
        Hs, Z, deriv, dH = fwd.Hs, bwd.Z, bwd.deriv, bwd.dH
        N = (T - loss_from) * B

        # The output layer and its loss, written straight into Z's dlogits columns.
        hidden = Hs[1 + loss_from:].reshape(N, Hsz)
        dlogits = bwd.dlogits[loss_from:].reshape(N, V)
        np.matmul(hidden, W_hq, out=dlogits)
        dlogits += params["b_q"]
        loss = self._softmax_xent(dlogits, _time_major(Y[:, loss_from:]), grad=True)
        bwd.dlogits[:loss_from] = 0

        dpre = bwd.dpre
        if self.joint:  # a small vocabulary: the output layer's input gradient rides along each step
            W_back_T = _transpose_into((W_hq, W_hh), bwd.staged, bwd.W_back_T)
            for t in range(T - 1, -1, -1):
                np.dot(Z[t + 1], W_back_T, out=dH)  # dL/dH_t = dlogits_t W_hq^T + dpre_{t+1} W_hh^T
                np.multiply(dH, deriv[t], out=dpre[t])
        else:  # one product over all steps for it: per step, K = V + H would cost more
            np.matmul(bwd.dlogits.reshape(T * B, V), W_hq.T, out=bwd.from_output.reshape(T * B, Hsz))
            W_hh_T = _transpose_into((W_hh,), bwd.staged, bwd.W_back_T)
            self._backward_steps(bwd.from_output, deriv, W_hh_T, dpre, dH)

        dpre2 = dpre.reshape(T * B, Hsz)
        if self.joint:
            # [H_s | x_s]^T [dlogits_{s-1} | dpre_s] summed over s: [[dW_hq, dW_hh], [-, dW_xh]]
            G = np.matmul(fwd.E.reshape((T + 1) * B, -1).T, Z.reshape((T + 1) * B, -1))
            grads: Params = {"W_hq": G[:Hsz, :V], "W_hh": G[:Hsz, V:], "W_xh": G[Hsz:, V:]}
        else:
            grads = {"W_hq": np.matmul(Hs[1:].reshape(T * B, Hsz).T, bwd.dlogits.reshape(T * B, V)),
                     "W_hh": np.matmul(Hs[:T].reshape(T * B, Hsz).T, dpre2)}
            grads["W_xh"] = _scatter_rows(ids, dpre2, V) if emb is None else np.matmul(emb.T, dpre2)
        grads["b_q"] = dlogits.sum(axis=0)
        if emb is None:
            grads["b_h"] = grads["W_xh"].sum(axis=0)  # every row of dpre lands in one row of dW_xh
        else:
            grads["b_h"] = dpre2.sum(axis=0)
            grads[EMBED_PARAM] = _scatter_rows(ids, dpre2 @ params["W_xh"].T, V)
        return loss, grads, (Hs[T].copy(),)

    def _loss_and_grad_dropout(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple,
                               loss_from: int, masks: DropoutMasks) -> tuple[float, Params, tuple]:
        """`loss_and_grad` with dropout on the cell outputs (and embedded inputs).

        The output mask sits between ``H_t`` and the output layer, so the output layer's input
        gradient can no longer ride along in the recurrence's GEMM: it is one product over all
        steps, masked, and the per-step GEMM is ``dpre_{t+1} W_hh^T`` alone."""
        B, T = X.shape
        Hsz, V = self.spec.hidden_size, self.spec.vocab_size
        W_hh, W_hq = params["W_hh"], params["W_hq"]
        dtype = W_hh.dtype
        ids = _time_major(X)
        drop_inputs = None
        if masks.inputs is not None and self.spec.embedding_dim:
            drop_inputs = masks.scaled("inputs", dtype).reshape(T * B, -1)
        deriv = np.empty((T, B, Hsz), dtype)
        fwd, emb = self._forward(params, ids, B, state, keep_inputs=False, drop_inputs=drop_inputs, deriv=deriv)
        Hs = fwd.Hs
        N = (T - loss_from) * B

        drop_out = masks.scaled("outputs", dtype)[loss_from:].reshape(N, Hsz)
        dropped = Hs[1 + loss_from:].reshape(N, Hsz) * drop_out
        dlogits = dropped @ W_hq
        dlogits += params["b_q"]
        loss = self._softmax_xent(dlogits, _time_major(Y[:, loss_from:]), grad=True)

        from_output = np.zeros((T, B, Hsz), dtype)  # dL/dH_t through the output layer
        np.multiply(dlogits @ W_hq.T, drop_out, out=from_output[loss_from:].reshape(N, Hsz))
        dpre = np.empty((T, B, Hsz), dtype)
        self._backward_steps(from_output, deriv, _transposed(W_hh), dpre, np.empty((B, Hsz), dtype))

        dpre2 = dpre.reshape(T * B, Hsz)
        grads: Params = {"W_hq": dropped.T @ dlogits, "b_q": dlogits.sum(axis=0),
                         "W_hh": Hs[:T].reshape(T * B, Hsz).T @ dpre2}
        if emb is None:
            grads["W_xh"] = _scatter_rows(ids, dpre2, V)
            grads["b_h"] = grads["W_xh"].sum(axis=0)
        else:
            grads["W_xh"] = emb.T @ dpre2
            grads["b_h"] = dpre2.sum(axis=0)
            demb = dpre2 @ params["W_xh"].T
            if drop_inputs is not None:
                demb *= drop_inputs
            grads[EMBED_PARAM] = _scatter_rows(ids, demb, V)
        return loss, grads, (Hs[T].copy(),)

    def loss(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[float, tuple]:
        """The forward pass and the loss only (evaluation): no gradient buffers are touched."""
        B, T = X.shape
        fwd, _ = self._forward(params, _time_major(X), B, state, keep_inputs=False)
        logits = fwd.Hs[1:].reshape(T * B, self.spec.hidden_size) @ params["W_hq"]
        logits += params["b_q"]
        loss = self._softmax_xent(logits, _time_major(Y), grad=False)
        return loss, (fwd.Hs[T].copy(),)

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
        """Generation through `seqkit_numpy.decoding.RNNDecoder`: one vector-matrix product per
        token on one BLAS thread."""
        decoder = RNNDecoder(params, self.relu, self.spec.embedding_dim > 0)
        with decoder.session(state[0][0]) as feed:
            yield feed
