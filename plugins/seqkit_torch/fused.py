"""Hand-batched BPTT in torch ops for the built-in vanilla RNN cells (``--impl fused`` on the CPU).

Layout is time-major: row ``t * B + b`` of every (T·B, ·) matrix is step ``t`` of sequence ``b``.
Only the recurrence runs per step (one (B, H) @ (H, H) product each way, written into preallocated
buffers); the one-hot input projection is a row gather, and the output layer, softmax, its
gradient and every weight gradient are single ops over all steps. No autograd graph is built.

With ``--matmul-dtype bfloat16`` every matrix product takes bfloat16 operands (cast on the way in,
the result cast back); the states, their gradients, the softmax and the returned gradients stay in
the parameters' dtype, as in the generic network's ``backend.matmul``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from seqkit.backend import Params
from seqkit.dropout import DropoutMasks
from seqkit.network import EMBED_PARAM, ModelSpec, Network
from seqkit_numpy.decoding import RNNDecoder
from seqkit_torch.devices import oom_to_advice

FUSED_CELLS = ("rnn-tanh", "rnn-relu")
MAX_BUFFER_SHAPES = 4


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor copied to a CUDA device without the host waiting for the device: the copy
    goes from pinned memory (torch's cached pinned blocks), because from pageable memory CUDA may
    synchronize with the stream before staging it."""
    return tensor.pin_memory().to(device, non_blocking=True)


class RNNBase(Network):
    """What both fused torch networks share: id transfer, checks and batch-1 generation steps."""

    impl = "fused"
    supports_dropout = True

    def __init__(self, backend, spec: ModelSpec) -> None:
        super().__init__(backend, spec)
        if spec.cell.name not in FUSED_CELLS:
            raise ValueError(f"{type(self).__name__} supports rnn-tanh and rnn-relu, not {spec.cell.name!r}")
        self.relu = spec.cell.name == "rnn-relu"
        self.device = backend.torch_device
        self.on_cpu = self.device.type == "cpu"
        self._cache: dict[str, tuple] = {}
        #: The dtype of matrix-product operands (None: the parameters' own, no casts).
        self.product_dtype = backend.product_dtype
        #: a @ b as the backend's op surface computes it (operands in `product_dtype` when set).
        self._mm = backend.matmul

    def _addmm(self, bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.product_dtype is None:
            return torch.addmm(bias, a, b)
        return self._mm(a, b).add_(bias)

    def _ids(self, X: np.ndarray) -> torch.Tensor:
        """(B, T) NumPy ids -> time-major flat int64 tensor (T·B,) on the device."""
        flat = torch.from_numpy(np.ascontiguousarray(X.T, dtype=np.int64).reshape(-1))
        return flat if self.on_cpu else _to_device(flat, self.device)

    def _masks(self, masks: DropoutMasks | None, T: int, B: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The dropout multipliers as tensors on the device: inputs (T·B, E) and outputs (T·B, H),
        either None where nothing is dropped."""
        if masks is None:
            return None, None
        dtype = self.backend.dtype

        def move(array: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(array.reshape(T * B, -1))
            return tensor if self.on_cpu else _to_device(tensor, self.device)

        inputs = move(masks.scaled("inputs", dtype)) if masks.inputs is not None and self.spec.embedding_dim else None
        return inputs, move(masks.scaled("outputs", dtype))

    def loss_and_grad(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0,
        masks: DropoutMasks | None = None,
    ) -> tuple[float, Params, tuple]:
        loss, grads, final = self.loss_and_grad_deferred(params, X, Y, state, loss_from, masks=masks)
        return float(loss), grads, final

    def loss(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[float, tuple]:
        loss, final = self.loss_deferred(params, X, Y, state)
        return float(loss), final

    @staticmethod
    def _check_loss_from(loss_from: int, steps: int) -> None:
        if not 0 <= loss_from < steps:
            raise ValueError(f"loss_from={loss_from} must be in [0, {steps})")

    def _activate_(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu_() if self.relu else x.tanh_()

    def _cached(self, name: str, sources: tuple, build):
        """``build()`` from the tensors ``sources``, rebuilt only when one is replaced or changed in
        place (its version counter moves): generation reuses it, a training update refreshes it."""
        versions = [t._version for t in sources]
        entry = self._cache.get(name)
        if entry is None or entry[1] != versions or any(a is not b for a, b in zip(entry[0], sources)):
            with torch.no_grad():
                entry = self._cache[name] = (sources, versions, build())
        return entry[2]

    def _input_table(self, params: Params) -> torch.Tensor:
        """W_xh + b_h: for one-hot inputs row v is token v's input projection plus the bias."""
        W_xh, b_h = params["W_xh"], params["b_h"]
        return self._cached("table", (W_xh, b_h), lambda: W_xh + b_h)

    def _step_weights(self, params: Params) -> tuple[torch.Tensor, ...]:
        """Detached weights for generation: W_xh + b_h (one-hot) or b_h, W_hh, W_hq, W_hq^T, b_q."""
        sources = tuple(params[k] for k in ("W_xh", "b_h", "W_hh", "W_hq", "b_q"))

        def build():
            W_xh, b_h, W_hh, W_hq, b_q = (t.detach() for t in sources)
            first = b_h if self.spec.embedding_dim else W_xh + b_h
            return first, W_hh, W_hq, W_hq.T.contiguous(), b_q

        return self._cached("step", sources, build)

    @oom_to_advice
    def step(self, params: Params, ids: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        # Every operand is detached, so no graph is recorded without a no_grad block.
        table, W_hh, W_hq, W_hq_T, b_q = self._step_weights(params)
        h_prev = state[0].detach()
        ids = np.asarray(ids)
        if self.spec.embedding_dim:
            emb = params[EMBED_PARAM].detach()[self._ids(ids[None, :])]
            pre = torch.addmm(table, emb, params["W_xh"].detach())
        elif ids.shape[0] == 1:
            pre = table[int(ids[0])]
        else:
            pre = table[self._ids(ids[None, :])]
        h = self._activate_(torch.addmm(pre, h_prev, W_hh))
        if h.shape[0] == 1:  # as a matrix-vector product: (1, H) @ (H, V) threads badly on the CPU
            logits = torch.addmv(b_q, W_hq_T, h[0])[None]
        else:
            logits = torch.addmm(b_q, h, W_hq)
        return (logits.numpy() if self.on_cpu else logits.cpu().numpy()), (h,)


    @contextmanager
    def decoding(self, params: Params, state: tuple) -> Iterator[Callable[[int], np.ndarray]]:
        """Generation on the host through `seqkit_numpy.decoding.RNNDecoder`: the parameters and
        the state are copied to NumPy once (from any device), then each token is one
        vector-matrix product and no torch call (a torch step costs ~20 µs on the CPU in dispatch
        and the host transfer of the logits, more on a GPU with its launch latency and sync)."""
        host = {name: value.detach().cpu().numpy() for name, value in params.items()}
        decoder = RNNDecoder(host, relu=self.relu, embedded=bool(self.spec.embedding_dim))
        with decoder.session(state[0][0].detach().cpu().numpy()) as feed:
            yield feed


def softmax_xent(logits: torch.Tensor, targets: torch.Tensor, grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean cross-entropy (a 0-d tensor) and, with ``grad``, dL/dlogits, computed in place of ``logits``."""
    logp = torch.log_softmax(logits, dim=1)
    loss = -logp.gather(1, targets[:, None]).mean()
    if not grad:
        return loss, None
    probs = logp.exp_()
    probs.scatter_add_(1, targets[:, None], torch.full_like(probs[:, :1], -1.0))
    probs.mul_(1.0 / targets.shape[0])
    return loss, probs


class FusedRNN(RNNBase):
    """rnn-tanh / rnn-relu language model with hand-written batched forward and backward passes.

    The same maths as `seqkit.network.GenericNetwork` with the built-in cells; buffers are reused
    across minibatches and nothing is allocated inside the time loops."""

    def __init__(self, backend, spec: ModelSpec) -> None:
        super().__init__(backend, spec)
        self._buffers: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def _buffers_for(self, T: int, B: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        key = (T, B, dtype)
        buffers = self._buffers.get(key)
        if buffers is None:
            if len(self._buffers) >= MAX_BUFFER_SHAPES:
                self._buffers.clear()
            H, dev = self.spec.hidden_size, self.device
            Hs = torch.empty((T + 1, B, H), dtype=dtype, device=dev)    # hidden states, Hs[0] = initial
            dpre = torch.empty((T, B, H), dtype=dtype, device=dev)      # dL/dH, then dL/dpre
            deriv = torch.empty((T, B, H), dtype=dtype, device=dev)     # activation derivative
            # and their per-step rows, made once: indexing a row in the loops costs a dispatch each time
            buffers = self._buffers[key] = (Hs, dpre, deriv, Hs.unbind(0), dpre.unbind(0), deriv.unbind(0))
        return buffers

    def _forward(self, params: Params, X: np.ndarray, state: tuple, drop_inputs: torch.Tensor | None = None):
        """Run the recurrence in place in the hidden-state buffer, whose rows t >= 1 first receive
        the input projections; returns (Hs, ids, embedded inputs or None, multiplied by
        ``drop_inputs`` when given)."""
        B, T = X.shape
        W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
        buffers = self._buffers_for(T, B, W_hh.dtype)
        Hs, H_rows = buffers[0], buffers[3]
        ids = self._ids(X)
        inputs = Hs[1:].view(T * B, -1)
        emb = None
        if self.spec.embedding_dim:
            emb = params[EMBED_PARAM].index_select(0, ids)
            if drop_inputs is not None:
                emb.mul_(drop_inputs)
            if self.product_dtype is None:
                torch.addmm(b_h, emb, W_xh, out=inputs)
            else:
                inputs.copy_(self._addmm(b_h, emb, W_xh))
        else:
            torch.index_select(self._input_table(params), 0, ids, out=inputs)
        Hs[0].copy_(state[0])
        activate = self._row_activation(Hs, H_rows)
        if self.product_dtype is None:
            for t in range(T):
                H_rows[t + 1].addmm_(H_rows[t], W_hh)
                activate(t + 1)
        else:
            W_low, h_low, product = self._low_precision(W_hh, B)
            for t in range(T):
                h_low.copy_(H_rows[t])
                torch.mm(h_low, W_low, out=product)
                H_rows[t + 1].add_(product)
                activate(t + 1)
        return Hs, ids, emb

    def _row_activation(self, Hs: torch.Tensor, H_rows: tuple[torch.Tensor, ...]) -> Callable[[int], object]:
        """``activate(s)`` applies the cell's activation to row ``s`` of ``Hs`` in place. On the CPU
        tanh goes through NumPy on the same memory: for a (B, H) row NumPy's vectorised tanh is ~5x
        faster than torch's (7 against 31 µs at 32 × 512; the two differ by at most an ulp)."""
        if self.relu:
            return lambda s: H_rows[s].relu_()
        if not self.on_cpu:
            return lambda s: H_rows[s].tanh_()
        rows, tanh = Hs.numpy(), np.tanh
        return lambda s: tanh(rows[s], out=rows[s])

    def _low_precision(self, W: torch.Tensor, B: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``W`` in `product_dtype` and two (B, H) buffers of that dtype for a recurrence's steps."""
        H = self.spec.hidden_size
        return (W.to(self.product_dtype), torch.empty((B, H), dtype=self.product_dtype, device=self.device),
                torch.empty((B, H), dtype=self.product_dtype, device=self.device))

    @oom_to_advice
    def loss_and_grad_deferred(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0,
        masks: DropoutMasks | None = None,
    ) -> tuple[torch.Tensor, Params, tuple]:
        B, T = X.shape
        self._check_loss_from(loss_from, T)
        Hsz, V = self.spec.hidden_size, self.spec.vocab_size
        drop_inputs, drop_outputs = self._masks(masks, T, B)
        with torch.no_grad():
            W_hh, W_hq = params["W_hh"], params["W_hq"]
            Hs, ids, emb = self._forward(params, X, state, drop_inputs)
            _, dpre, deriv, _, dpre_rows, deriv_rows = self._buffers_for(T, B, W_hh.dtype)
            hidden = Hs[1 + loss_from:].view(-1, Hsz)
            if drop_outputs is not None:
                hidden = hidden * drop_outputs[loss_from * B:]
            targets = self._ids(Y[:, loss_from:])
            loss, dlogits = softmax_xent(self._addmm(params["b_q"], hidden, W_hq), targets, grad=True)

            grads: Params = {"W_hq": self._mm(dlogits.T, hidden).T.contiguous(), "b_q": dlogits.sum(0)}
            # dpre holds dL/dH_t from the output layer, then (in the loop) dL/dpre_t
            if loss_from:
                dpre[:loss_from].zero_()
            if self.product_dtype is None:
                torch.mm(dlogits, W_hq.T, out=dpre[loss_from:].view(-1, Hsz))
            else:
                dpre[loss_from:].view(-1, Hsz).copy_(self._mm(dlogits, W_hq.T))
            if drop_outputs is not None:
                dpre[loss_from:].view(-1, Hsz).mul_(drop_outputs[loss_from * B:])
            if self.relu:
                torch.sign(Hs[1:], out=deriv)  # relu outputs are >= 0
            else:
                torch.addcmul(torch.ones((), dtype=deriv.dtype, device=deriv.device), Hs[1:], Hs[1:],
                              value=-1, out=deriv)
            W_hh_T = W_hh.T.contiguous()
            dpre_rows[T - 1].mul_(deriv_rows[T - 1])
            if self.product_dtype is None:
                for t in range(T - 2, -1, -1):
                    dpre_rows[t].addmm_(dpre_rows[t + 1], W_hh_T).mul_(deriv_rows[t])
            else:
                W_low, g_low, product = self._low_precision(W_hh_T, B)
                for t in range(T - 2, -1, -1):
                    g_low.copy_(dpre_rows[t + 1])
                    torch.mm(g_low, W_low, out=product)
                    dpre_rows[t].add_(product).mul_(deriv_rows[t])

            dpre2 = dpre.view(T * B, Hsz)
            grads["W_hh"] = self._mm(Hs[:-1].view(T * B, Hsz).T, dpre2)
            grads["b_h"] = dpre2.sum(0)
            if emb is None:
                grads["W_xh"] = torch.zeros((V, Hsz), dtype=dpre2.dtype, device=self.device).index_add_(0, ids, dpre2)
            else:
                grads["W_xh"] = self._mm(emb.T, dpre2)
                demb = self._mm(dpre2, params["W_xh"].T)
                if drop_inputs is not None:
                    demb.mul_(drop_inputs)
                grads[EMBED_PARAM] = torch.zeros_like(params[EMBED_PARAM]).index_add_(0, ids, demb)
            final = Hs[T].clone()
        return loss, grads, (final,)

    @oom_to_advice
    def loss_deferred(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[torch.Tensor, tuple]:
        T = X.shape[1]
        with torch.no_grad():
            Hs, _, _ = self._forward(params, X, state)
            logits = self._addmm(params["b_q"], Hs[1:].view(-1, self.spec.hidden_size), params["W_hq"])
            loss = F.cross_entropy(logits, self._ids(Y))
            final = Hs[T].clone()
        return loss, (final,)
