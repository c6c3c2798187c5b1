"""The built-in RNN cells through ``torch.nn.RNN`` (cuDNN on CUDA), mapped to the core's parameters.

``nn.RNN`` has two biases; the core has one. ``bias_ih`` carries ``b_h`` and ``bias_hh`` is held at
zero (and not differentiated), so the function, and its gradients, are the core cell's exactly.
Weights are copied into the module's flat (cuDNN) buffer before each call: three small copies.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from seqkit.backend import Params
from seqkit.dropout import DropoutMasks
from seqkit.network import EMBED_PARAM, ModelSpec
from seqkit_torch.devices import oom_to_advice
from seqkit_torch.fused import RNNBase
from seqkit_torch.graphs import Outputs, StepGraphs, cuda_graph_recorder


@contextlib.contextmanager
def ieee_float32_rnn() -> Iterator[None]:
    """cuDNN may run float32 RNNs in TF32 where allowed; hold them to IEEE float32 meanwhile, so
    the numbers match every other path (torch >= 2.9 has a per-op switch, older ones a global one)."""
    cudnn = torch.backends.cudnn
    try:
        old, per_op = cudnn.rnn.fp32_precision, True
    except AttributeError:
        old, per_op = cudnn.allow_tf32, False
    if per_op:
        cudnn.rnn.fp32_precision = "ieee"
    else:
        cudnn.allow_tf32 = False
    try:
        yield
    finally:
        if per_op:
            cudnn.rnn.fp32_precision = old
        else:
            cudnn.allow_tf32 = old


class ModuleRNN(RNNBase):
    """rnn-tanh / rnn-relu through one ``torch.nn.RNN`` layer and autograd (the default on CUDA).

    With the backend's ``--cuda-graphs`` a minibatch's loss and gradients replay a CUDA graph
    (`graphs`, a `seqkit_torch.graphs.StepGraphs`; None without)."""

    def __init__(self, backend, spec: ModelSpec) -> None:
        super().__init__(backend, spec)
        with torch.random.fork_rng(devices=[]):  # its own init is overwritten; leave the caller's RNG be
            rnn = torch.nn.RNN(spec.input_size, spec.hidden_size, nonlinearity="relu" if self.relu else "tanh")
        self.rnn = rnn.to(device=self.device, dtype=backend.torch_dtype)
        with torch.no_grad():
            self.rnn.bias_hh_l0.zero_()
        self.rnn.bias_hh_l0.requires_grad_(False)
        self._weights = (self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0)
        self.graphs = StepGraphs(cuda_graph_recorder(self.device)) if getattr(backend, "cuda_graphs", False) else None

    def _load(self, params: Params) -> None:
        with torch.no_grad():
            w_ih, w_hh, b_ih = self._weights
            w_ih.copy_(params["W_xh"].T)
            w_hh.copy_(params["W_hh"].T)
            b_ih.copy_(params["b_h"])

    def _inputs(self, params: Params, ids: torch.Tensor, T: int, B: int) -> torch.Tensor:
        if self.spec.embedding_dim:
            return F.embedding(ids, params[EMBED_PARAM]).view(T, B, -1)
        return F.one_hot(ids, self.spec.vocab_size).to(self.rnn.weight_hh_l0.dtype).view(T, B, -1)

    @oom_to_advice
    def loss_and_grad_deferred(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0,
        masks: DropoutMasks | None = None,
    ) -> tuple[torch.Tensor, Params, tuple]:
        B, T = X.shape
        self._check_loss_from(loss_from, T)
        ids, targets, h0 = self._ids(X), self._ids(Y[:, loss_from:]), state[0].detach()
        drop_inputs, drop_outputs = self._masks(masks, T, B)
        inputs = (ids, targets, h0, drop_inputs, drop_outputs)
        compute = functools.partial(self._loss_and_grad, loss_from=loss_from)
        if self.graphs is not None:
            key = (T, B, loss_from, drop_inputs is None, drop_outputs is None)
            replayed = self.graphs.run(compute, params, inputs, key)
            if replayed is not None:
                loss, grads, h_T = replayed
                return loss, grads, (h_T,)
        loss, grads, h_T = compute(params, *inputs)
        return loss, grads, (h_T,)

    def _loss_and_grad(self, params: Params, ids: torch.Tensor, targets: torch.Tensor, h0: torch.Tensor,
                       drop_inputs: torch.Tensor | None = None, drop_outputs: torch.Tensor | None = None, *,
                       loss_from: int = 0) -> Outputs:
        """(loss, gradients, final state) from device tensors: time-major flat ``ids`` (T·B,),
        ``targets`` of steps ``loss_from:``, the initial state ``h0`` (B, H) and the dropout
        multipliers (or None). Reads no host value, so a CUDA graph can record it."""
        B = h0.shape[0]
        T = ids.shape[0] // B
        self._load(params)
        names = ["W_hq", "b_q"] + ([EMBED_PARAM] if self.spec.embedding_dim else [])
        leaves = {k: params[k].detach().requires_grad_(True) for k in names}
        with torch.enable_grad(), ieee_float32_rnn():
            inputs = self._inputs(leaves, ids, T, B)
            if drop_inputs is not None:
                inputs = inputs * drop_inputs.view(T, B, -1)
            out, h_T = self.rnn(inputs, h0[None])
            hidden = out[loss_from:].reshape(-1, self.spec.hidden_size)
            if drop_outputs is not None:
                hidden = hidden * drop_outputs[loss_from * B:]
            loss = F.cross_entropy(torch.addmm(leaves["b_q"], hidden, leaves["W_hq"]), targets)
            found = torch.autograd.grad(loss, [*self._weights, *(leaves[k] for k in names)])
        g_ih, g_hh, g_b = found[:3]
        grads: Params = {"W_xh": g_ih.T.contiguous(), "W_hh": g_hh.T.contiguous(), "b_h": g_b}
        grads.update(zip(names, found[3:]))
        return loss.detach(), grads, h_T[0].detach()

    @oom_to_advice
    def loss_deferred(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[torch.Tensor, tuple]:
        B, T = X.shape
        self._load(params)
        with torch.no_grad(), ieee_float32_rnn():
            out, h_T = self.rnn(self._inputs(params, self._ids(X), T, B), state[0][None])
            logits = torch.addmm(params["b_q"], out.reshape(-1, self.spec.hidden_size), params["W_hq"])
            loss = F.cross_entropy(logits, self._ids(Y))
        return loss, (h_T[0],)
