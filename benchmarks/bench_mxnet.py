"""MXNet speed rows: a d2l-style MXNet scratch reference, gluon ``rnn.RNN``, seqkit mxnet scratch/fused.

    python benchmarks/bench_mxnet.py --json OUT --threads N --repeats R --batch-size B [--quick]

The lesson's workload: The Time Machine as one-hot characters (from ``$SEQKIT_DATA``, else the
download cache), T=35, H=512, tanh, global-norm clipping at 1, SGD with lr 1, float32, sequential
minibatches with the state carried (detached). Each row trains a fixed number of minibatches after
a warm-up; the value is the median of the repeats in tokens/s (training) or characters/s (greedy
generation, batch 1). Thread counts are set before MXNet is imported; every row runs on the engine
seqkit's import chooses (``NaiveEngine`` unless ``MXNET_ENGINE_TYPE`` is set: see
`seqkit_mxnet.compat`). Run this in its own process (``benchmarks/bench.py`` does): MXNet's
OpenMP runtime slows later small torch GEMMs in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from bench import (eval_stream_tokens, load_corpus, minibatches, seqkit_evaluate,  # same folder; no framework
                   set_threads)  # imports

H, T, LR, THETA, SEED = 512, 35, 1.0, 1.0, 0
GENERATE_CHARS = 500


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="few minibatches (a smoke test, not a figure)")
    return parser.parse_args(argv)


def timed(step: Callable[[object, object], None], batches: list, warmup: int, sync: Callable[[], None]) -> float:
    """Seconds for ``step`` over ``batches[warmup:]`` after running the first ``warmup``."""
    for X, Y in batches[:warmup]:
        step(X, Y)
    sync()
    start = time.perf_counter()
    for X, Y in batches[warmup:]:
        step(X, Y)
    sync()
    return time.perf_counter() - start


# -- the rows ------------------------------------------------------------------------------------
def d2l_scratch(mx, init, vocab_size: int, batch_size: int):
    """The lesson's MXNet code: one-hot list, Python loop over steps, autograd, clipping, SGD."""
    nd, autograd = mx.nd, mx.autograd
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    params = [nd.array(init[k]) for k in ("W_xh", "W_hh", "b_h", "W_hq", "b_q")]
    for p in params:
        p.attach_grad()
    state = [nd.zeros((batch_size, H))]

    def rnn(inputs, H_, params):
        W_xh, W_hh, b_h, W_hq, b_q = params
        outputs = []
        for X in inputs:
            H_ = nd.tanh(nd.dot(X, W_xh) + nd.dot(H_, W_hh) + b_h)
            outputs.append(nd.dot(H_, W_hq) + b_q)
        return outputs, H_

    def grad_clipping(theta):
        norm = nd.array([0.0])
        for p in params:
            norm += (p.grad ** 2).sum()
        norm = norm.sqrt().asscalar()
        if norm > theta:
            for p in params:
                p.grad[:] *= theta / norm

    def step(X, Y):
        X, Y = nd.array(X), nd.array(Y)
        state[0] = state[0].detach()  # the seed code's `s.detach()` drops the result
        with autograd.record():
            inputs = [nd.one_hot(x, vocab_size) for x in X.T]
            outputs, state[0] = rnn(inputs, state[0], params)
            l = loss(nd.concat(*outputs, dim=0), Y.T.reshape((-1,))).mean()
        l.backward()
        grad_clipping(THETA)
        for p in params:
            p[:] = p - LR * p.grad
        l.asscalar()

    return step


def gluon_rnn(mx, vocab_size: int, batch_size: int):
    """gluon ``rnn.RNN`` (tanh set explicitly) + ``nn.Dense``, hybridized, trained the usual way."""
    nd, autograd, gluon = mx.nd, mx.autograd, mx.gluon

    class Model(gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            self.rnn = gluon.rnn.RNN(H, activation="tanh", input_size=vocab_size)
            self.dense = gluon.nn.Dense(vocab_size, flatten=False, in_units=H)

        def hybrid_forward(self, F, x, h):
            out, h = self.rnn(F.one_hot(x, vocab_size), [h])
            return self.dense(out), h[0]

    model = Model()
    model.initialize(mx.init.Normal(0.01))
    model.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": LR})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    params = [p.data() for p in model.collect_params().values()]
    state = [model.rnn.begin_state(batch_size)[0]]

    def step(X, Y):
        X, Y = nd.array(X.T), nd.array(Y.T)
        with autograd.record():
            out, h = model(X, state[0].detach())
            l = loss(out, Y).mean()
        l.backward()
        state[0] = h
        gluon.utils.clip_global_norm([p.grad for p in params], THETA)
        trainer.step(1)
        l.asscalar()

    return step


def seqkit_train(network, params, clipper):
    """The inner loop of `seqkit.engine.fit`: loss and gradients, clipping, SGD, carried state."""
    state = [None]

    def step(X, Y):
        if state[0] is None:
            state[0] = network.init_state(X.shape[0])
        _, grads, state[0] = network.loss_and_grad(params, X, Y, state[0])
        grads, _, _ = clipper.clip(network.backend, grads)
        network.backend.sgd_update(params, grads, LR)

    return step


def run_rows(args: argparse.Namespace) -> list[dict]:
    set_threads(args.threads)
    import numpy as np

    from seqkit.engine import predict
    from seqkit.network import GenericNetwork, ModelSpec
    from seqkit.plugins import get_registry
    from seqkit_mxnet.backend import MxnetBackend, mx

    registry = get_registry()
    ids, vocab = load_corpus(None)
    V, batch = len(vocab), args.batch_size
    warmup, count = (1, 4) if args.quick else (3, 20)
    batches = minibatches(ids, batch, warmup + count)
    spec = ModelSpec(registry.create("cell", "rnn-tanh"), V, H)
    init = {k: v.astype(np.float32) for k, v in spec.init_params(np.random.default_rng(SEED)).items()}
    backend = MxnetBackend("cpu", "float32")
    clipper = registry.create("clipper", "norm", clip_theta=THETA)

    def seqkit_row(impl: str):
        def make():
            network = backend.fused_network(spec) if impl == "fused" else GenericNetwork(backend, spec)
            return seqkit_train(network, {k: backend.asarray(v) for k, v in init.items()}, clipper)
        return make

    trainers = {
        "mxnet d2l-style scratch (reference)": lambda: d2l_scratch(mx, init, V, batch),
        "mxnet gluon rnn.RNN hybridized + Dense": lambda: gluon_rnn(mx, V, batch),
        "seqkit mxnet scratch": seqkit_row("scratch"),
        "seqkit mxnet fused": seqkit_row("fused"),
    }
    tokens = count * batch * T
    runs: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.repeats):  # rows interleaved, so a burst of load elsewhere hits them alike
        for name, make in trainers.items():
            runs[name].append(tokens / timed(make(), batches, warmup, mx.nd.waitall))
    rows = [{"name": name, "kind": "train", "value": statistics.median(r), "runs": r} for name, r in runs.items()]

    network = backend.fused_network(spec)
    params = {k: backend.asarray(v) for k, v in init.items()}
    eval_tokens = (warmup + count) * batch * T
    evaluate = seqkit_evaluate(network, params, ids, batch, eval_tokens)
    evaluate()  # warm-up
    speeds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        evaluate()
        speeds.append(eval_stream_tokens(batch, eval_tokens) / (time.perf_counter() - start))
    rows.append({"name": "seqkit mxnet fused", "kind": "evaluate", "value": statistics.median(speeds), "runs": speeds})

    greedy = registry.create("decoder", "greedy")
    prefix = vocab.encode(list("time traveller "))
    length = 100 if args.quick else GENERATE_CHARS
    predict(network, params, prefix, 20, greedy, np.random.default_rng(0))  # warm-up
    speeds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        predict(network, params, prefix, length, greedy, np.random.default_rng(0))
        speeds.append(length / (time.perf_counter() - start))
    rows.append({"name": "seqkit mxnet fused greedy generation (batch 1)", "kind": "generate",
                 "value": statistics.median(speeds), "runs": speeds})
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"MXNet rows: B={args.batch_size} T={T} H={H} timemachine one-hot, float32, threads={args.threads}, "
          f"MXNET_ENGINE_TYPE={os.environ.get('MXNET_ENGINE_TYPE', '(default)')}, median of {args.repeats}")
    reference = next((r["value"] for r in rows if r["name"].startswith("mxnet d2l")), None)
    for row in rows:
        unit = "chars/s" if row["kind"] == "generate" else "tok/s"
        ratio = f"{row['value'] / reference:5.2f}x d2l" if reference and row["kind"] == "train" else ""
        spread = ", ".join(f"{r:,.0f}" for r in row["runs"])
        print(f"  {row['name']:<48} {row['value']:>10,.0f} {unit:<7} {ratio:<10} [{spread}]")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = run_rows(args)
    print_table(rows, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
