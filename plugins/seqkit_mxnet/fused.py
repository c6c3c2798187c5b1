"""rnn-tanh / rnn-relu on MXNet's fused RNN operator (``RNN``, what gluon's ``rnn.RNN`` runs), hybridized.

Parameter mapping to the core's names: the operator reads one flat vector laid out as
``[i2h_weight (H, I), h2h_weight (H, H), i2h_bias (H), h2h_bias (H)]``. The network keeps that
vector as its own autodiff leaf and copies ``W_xh.T``, ``W_hh.T`` and ``b_h`` into it before each
call; ``h2h_bias`` stays zero and its gradient is never read, so it is not trained and the numbers
equal the one-bias cell. Gradients come back out of the leaf's gradient by the inverse mapping.
(Building the vector with ``concat`` inside the graph works too, but costs ~12% per minibatch.)
The output layer (``W_hq``, ``b_q``) and the loss are ordinary ``mx.nd`` ops over all steps. With
one-hot inputs and a vocabulary wider than the hidden layer, ``one-hot @ W_xh`` is a row gather
and the operator's input weight is a fixed identity.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from seqkit.backend import Params
from seqkit.dropout import DropoutMasks
from seqkit.network import EMBED_PARAM, ModelSpec, Network
from seqkit_mxnet.backend import MxnetBackend, mx, nd
from seqkit_numpy.decoding import RNNDecoder

MODES = {"rnn-tanh": "rnn_tanh", "rnn-relu": "rnn_relu"}


class RNNOperator(mx.gluon.HybridBlock):
    """``RNN(inputs, flat params, h0)`` as a hybridized block: the cached graph keeps the operator's
    state (oneDNN primitives) between calls, about 20% faster than calling ``nd.RNN`` directly."""

    def __init__(self, mode: str, hidden_size: int) -> None:
        super().__init__()
        self.mode = mode
        self.hidden_size = hidden_size

    def hybrid_forward(self, F, inputs, flat, h0):  # noqa: N803 (gluon's signature)
        return F.RNN(inputs, flat, h0, state_size=self.hidden_size, num_layers=1, mode=self.mode,
                     state_outputs=True)


class FusedRNN(Network):
    """The rnn-tanh / rnn-relu language model with the recurrence in one call of MXNet's RNN operator."""

    impl = "fused"
    supports_dropout = True

    def __init__(self, backend: MxnetBackend, spec: ModelSpec) -> None:
        super().__init__(backend, spec)
        if spec.cell.name not in MODES:
            raise ValueError(f"FusedRNN supports {', '.join(MODES)}, not {spec.cell.name!r}")
        self.mode = MODES[spec.cell.name]
        H = spec.hidden_size
        self._rnn = RNNOperator(self.mode, H)
        self._rnn.hybridize(static_alloc=True, static_shape=True)
        self.gather = not spec.embedding_dim and spec.vocab_size > H
        inputs = spec.embedding_dim or (H if self.gather else spec.vocab_size)
        ends = np.cumsum([H * inputs, H * H, H, H]).tolist()
        self._layout = {"W_xh": (0, ends[0], (H, inputs)), "W_hh": (ends[0], ends[1], (H, H)),
                        "b_h": (ends[1], ends[2], (H,))}
        self._flat = backend.zeros((ends[3],))
        self._flat.attach_grad()
        if self.gather:
            self._view(self._flat, "W_xh")[:] = nd.eye(H, ctx=backend.ctx, dtype=backend.dtype)
        # Parameters autograd differentiates directly; the rest get their gradients from the flat leaf.
        self._leaves = ("W_hq", "b_q")
        if spec.embedding_dim:
            self._leaves += (EMBED_PARAM,)
        elif self.gather:
            self._leaves += ("W_xh",)

    # -- helpers ----------------------------------------------------------------------------
    def _view(self, flat, name: str):
        start, stop, shape = self._layout[name]
        return flat[start:stop].reshape(shape)

    def _load(self, params: Params) -> None:
        """Copy the core's recurrent parameters into the operator's flat vector (outside the graph)."""
        if not self.gather:
            nd.transpose(params["W_xh"], out=self._view(self._flat, "W_xh"))
        nd.transpose(params["W_hh"], out=self._view(self._flat, "W_hh"))
        params["b_h"].copyto(self._view(self._flat, "b_h"))

    def _recur(self, params: Params, X: np.ndarray, state: tuple, masks: DropoutMasks | None = None):
        """All hidden states (T, B, H) and the final state (B, H); call `_load` first. ``masks``
        drop the embedded inputs (the outputs are dropped in `_loss`)."""
        ids = self.backend.asarray(np.ascontiguousarray(X.T))
        if self.spec.embedding_dim:
            inputs = nd.take(params[EMBED_PARAM], ids, axis=0)
            if masks is not None and masks.inputs is not None:
                inputs = inputs * self.backend.asarray(masks.scaled("inputs", self.backend.dtype))
        elif self.gather:
            inputs = nd.take(params["W_xh"], ids, axis=0)
        else:
            inputs = nd.one_hot(ids, self.spec.vocab_size, dtype=self.backend.dtype)
        outputs, last = self._rnn(inputs, self._flat, state[0].expand_dims(axis=0))
        return outputs, last.reshape((-1, self.spec.hidden_size))

    def _loss(self, params: Params, outputs, Y: np.ndarray, loss_from: int, masks: DropoutMasks | None = None):
        if loss_from:
            outputs = nd.slice_axis(outputs, axis=0, begin=loss_from, end=None)
        if masks is not None:
            outputs = outputs * self.backend.asarray(masks.scaled("outputs", self.backend.dtype)[loss_from:])
        # FullyConnected (oneDNN) is ~4x faster than nd.dot (bundled OpenBLAS) here, even with the transpose.
        logits = nd.FullyConnected(outputs.reshape((-1, self.spec.hidden_size)), params["W_hq"].T, params["b_q"],
                                   num_hidden=self.spec.vocab_size)
        targets = self.backend.asarray(np.ascontiguousarray(Y[:, loss_from:].T).reshape(-1))
        return -nd.pick(nd.log_softmax(logits, axis=1), targets, axis=1).mean()

    # -- Network API ------------------------------------------------------------------------
    def loss_and_grad(
        self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple, loss_from: int = 0,
        masks: DropoutMasks | None = None,
    ) -> tuple[float, Params, tuple]:
        if not 0 <= loss_from < X.shape[1]:
            raise ValueError(f"loss_from={loss_from} must be in [0, {X.shape[1]})")
        self._load(params)
        for name in self._leaves:
            params[name].attach_grad()  # fresh buffers: handed-out gradients stay valid
        with mx.autograd.record():
            outputs, last = self._recur(params, X, state, masks)
            loss = self._loss(params, outputs, Y, loss_from, masks)
        loss.backward()
        grads = {name: params[name].grad for name in self._leaves}
        flat_grad = self._flat.grad
        if not self.gather:
            grads["W_xh"] = self._view(flat_grad, "W_xh").T
        grads["W_hh"] = self._view(flat_grad, "W_hh").T
        grads["b_h"] = self._view(flat_grad, "b_h").copy()
        return float(loss.asscalar()), grads, (last.detach(),)

    def loss(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[float, tuple]:
        self._load(params)
        outputs, last = self._recur(params, X, state)
        return float(self._loss(params, outputs, Y, 0).asscalar()), (last.detach(),)

    def step(self, params: Params, ids: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        index = self.backend.asarray(np.asarray(ids))
        if self.spec.embedding_dim:
            x = nd.dot(nd.take(params[EMBED_PARAM], index, axis=0), params["W_xh"])
        else:
            x = nd.take(params["W_xh"], index, axis=0)
        pre = nd.broadcast_add(x + nd.dot(state[0], params["W_hh"]), params["b_h"])
        h = nd.tanh(pre) if self.mode == "rnn_tanh" else nd.relu(pre)
        logits = nd.broadcast_add(nd.dot(h, params["W_hq"]), params["b_q"])
        return logits.asnumpy(), (h.detach(),)

    @contextmanager
    def decoding(self, params: Params, state: tuple) -> Iterator[Callable[[int], np.ndarray]]:
        """Generation on the host through `seqkit_numpy.decoding.RNNDecoder`: the parameters and
        the state are copied to NumPy once, then each token is one vector-matrix product with no
        MXNet call (stepping MXNet cost ~0.5 ms a token, mostly engine dispatch). One BLAS thread:
        beside MXNet's OpenMP runtime a second one made generation ~20 % slower, even after a pause
        (docs/performance.md)."""
        host = {name: value.asnumpy() for name, value in params.items()}
        decoder = RNNDecoder(host, relu=self.mode == "rnn_relu", embedded=bool(self.spec.embedding_dim))
        with decoder.session(state[0][0].asnumpy(), max_threads=1) as feed:
            yield feed
