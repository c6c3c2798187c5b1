"""Training and generation speed of seqkit's backends against plain PyTorch, in one process run.

    python benchmarks/bench.py [--threads N] [--repeats R] [--quick] [--json PATH]
    python benchmarks/bench.py --device cuda --batch-sizes 32,256,1024

The lesson's workload: The Time Machine as one-hot characters (``--data-dir`` or ``$SEQKIT_DATA``,
else the download cache), T=35, H=512, tanh, global-norm clipping at 1, SGD with lr 1, float32,
sequential minibatches with the state carried (detached). Every training row runs the same
minibatches: a warm-up, then a fixed count, timed; repeats are interleaved across rows so a busy
machine slows every row alike, and the figure is the median. "x nn.RNN" is the ratio of the two
medians; "paired" the median of the per-round ratios, which cancels drift in the machine's load over
the run. Generation is greedy, batch 1, 500 characters after the prefix "time traveller ".
Evaluation is `seqkit.engine.evaluate` (the validation pass: the text as B parallel streams, state
carried, loss only) against ``nn.RNN`` under ``no_grad``. The matmul-only ceiling is the time of
the matrix products one minibatch needs (recurrent step forward and backward, the input, recurrent
and output weight gradients, the output layer and its input gradient) with nothing else.

The roofline: a large GEMM (2048³, float32) through NumPy's BLAS and through torch gives the
machine's attainable GFLOP/s (the faster of the two, best of its runs); each training row's
GFLOP/s counts the products a BPTT cannot avoid, 6H² + 6HV per token (forward and backward
recurrence, dW_hh; output layer, its input gradient, dW_hq; a one-hot input is a row gather),
and evaluation rows 2H² + 2HV.

Thread counts are set before any framework is imported. MXNet rows come from
``benchmarks/bench_mxnet.py`` in a subprocess (MXNet's OpenMP runtime slows torch in-process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

H, T, LR, THETA, SEED = 512, 35, 1.0, 1.0, 0
PREFIX, GENERATE_CHARS = "time traveller ", 500
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
BASELINE_TRAIN, BASELINE_GENERATE = "torch nn.RNN + nn.Linear", "torch nn.RNN stepped (no_grad)"
BASELINE_EVALUATE = "torch nn.RNN + nn.Linear (no_grad)"
BASELINES = {"train": BASELINE_TRAIN, "generate": BASELINE_GENERATE, "evaluate": BASELINE_EVALUATE}
PROBE_N = 2048
D2L_GENERATE = "torch nn.RNN stepped, autograd on (d2l)"
BFLOAT16_ROW = "seqkit torch fused, bfloat16 products (opt-in)"
CUDA_GRAPHS_ROW = "seqkit torch fused, CUDA graphs (opt-in)"
D2L_SCRATCH_ROW = "torch d2l-style scratch (reference)"
NUMPY_PLAIN_ROW = "numpy hand-written BPTT (reference)"
#: The d2l book's own GPU training speeds for this lesson (its machine; the chapter's B=32, T=35).
D2L_BOOK_GPU = {"scratch": 71.5e3, "concise": 268e3}
HERE = Path(__file__).resolve().parent


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=default_threads(), help="threads for every framework")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the torch rows run")
    parser.add_argument("--batch-sizes", default="32", help="comma-separated, e.g. 32,256,1024")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per row (median reported)")
    parser.add_argument("--minibatches", type=int, default=None, help="timed minibatches per repeat")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (few minibatches, 3 repeats)")
    parser.add_argument("--no-mxnet", action="store_true", help="skip the MXNet subprocess")
    parser.add_argument("--mxnet-python", default=None,
                        help="interpreter for the MXNet subprocess (default: this one); MXNet needs numpy<2, so "
                             "this lets the other rows run on NumPy 2 while MXNet's come from another venv")
    parser.add_argument("--data-dir", default=None, help="folder with timemachine.txt (else $SEQKIT_DATA)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if args.quick:
        args.repeats = min(args.repeats, 3)
    if args.repeats < 1 or args.threads < 1 or not args.batch_sizes:
        parser.error("--repeats, --threads and --batch-sizes must be positive")
    return args


def set_threads(threads: int) -> None:
    """Before any framework import: every OpenMP/BLAS runtime gets the same thread count."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


@dataclass
class Row:
    """One measured line of the table: median and every run, in tokens/s or chars/s."""

    name: str
    kind: str  # "train" | "evaluate" | "generate" | "ceiling"
    batch_size: int
    runs: list[float] = field(default_factory=list)
    source: str = "bench.py"

    @property
    def value(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")


# -- workload ------------------------------------------------------------------------------------
def load_corpus(data_dir: str | None):
    """The Time Machine's training ids and vocabulary; exits with seqkit's one-line message (where
    to put the file) when the corpus cannot be found or read."""
    from seqkit.api import configure, create
    from seqkit.dataset import load_dataset
    from seqkit.errors import SeqkitError
    from seqkit.plugins import get_registry

    registry = get_registry()
    try:
        config = configure({"corpus": "timemachine", "data_dir": data_dir}, registry=registry)
        data = load_dataset(config, create(registry, config, "corpus"))
    except SeqkitError as exc:
        raise SystemExit(f"error: {exc}") from None
    return data.train_ids, data.vocab


def minibatches(ids, batch_size: int, count: int) -> list:
    """``count`` sequential (X, Y) minibatches, cycling over the corpus."""
    import numpy as np

    from seqkit_samplers.partition import SequentialSampler

    batches: list = []
    while len(batches) < count:
        batches.extend(SequentialSampler().batches(ids, batch_size, T, np.random.default_rng(len(batches))))
    return batches[:count]


# -- reference implementations written here ------------------------------------------------------
def d2l_torch(torch, init: dict, V: int, B: int, device: str) -> Callable:
    """The lesson's PyTorch scratch code: one-hot inputs, Python loop over steps, autograd,
    ``grad_clipping``, hand SGD."""
    F = torch.nn.functional
    params = [torch.tensor(init[k], device=device, requires_grad=True) for k in ("W_xh", "W_hh", "b_h", "W_hq", "b_q")]
    state = [torch.zeros((B, H), device=device)]

    def rnn(inputs, H_):
        W_xh, W_hh, b_h, W_hq, b_q = params
        outputs = []
        for X in inputs:
            H_ = torch.tanh(torch.mm(X, W_xh) + torch.mm(H_, W_hh) + b_h)
            outputs.append(torch.mm(H_, W_hq) + b_q)
        return torch.cat(outputs, dim=0), H_

    def step(X, Y):
        X, Y = torch.as_tensor(X, device=device), torch.as_tensor(Y, device=device)
        state[0] = state[0].detach()
        y_hat, state[0] = rnn(F.one_hot(X.T, V).float(), state[0])
        loss = F.cross_entropy(y_hat, Y.T.reshape(-1)).mean()
        loss.backward()
        norm = torch.sqrt(sum(torch.sum(p.grad ** 2) for p in params))
        if norm > THETA:
            for p in params:
                p.grad[:] *= THETA / norm
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad.zero_()
        loss.item()

    return step


def numpy_plain_bptt(init: dict, V: int, B: int) -> Callable:
    """A straightforward hand-written NumPy BPTT: one bias, one GEMM per step each way into
    preallocated float32 buffers, ``np.tanh``, everything else batched over the T steps, the
    lesson's clipping and SGD: what someone writing the lesson in NumPy by hand would write."""
    import numpy as np

    P = {k: v.astype(np.float32).copy() for k, v in init.items()}
    Hs, inputs = np.empty((T + 1, B, H), np.float32), np.empty((T, B, H), np.float32)
    dpre, dH, carried = np.empty((T, B, H), np.float32), np.empty((B, H), np.float32), [np.zeros((B, H), np.float32)]
    rows = np.arange(T * B)

    def step(X, Y):
        W_xh, W_hh, b_h, W_hq, b_q = P["W_xh"], P["W_hh"], P["b_h"], P["W_hq"], P["b_q"]
        ids, targets = X.T.reshape(-1), Y.T.reshape(-1)
        np.add(W_xh[ids], b_h, out=inputs.reshape(T * B, H))  # one-hot @ W_xh is a row gather
        Hs[0] = carried[0]
        for t in range(T):
            np.dot(Hs[t], W_hh, out=Hs[t + 1])
            Hs[t + 1] += inputs[t]
            np.tanh(Hs[t + 1], out=Hs[t + 1])
        hidden = Hs[1:].reshape(T * B, H)
        probs = hidden @ W_hq + b_q
        probs -= probs.max(axis=1, keepdims=True)
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=1, keepdims=True)
        probs[rows, targets] -= 1
        probs /= T * B
        from_output = (probs @ W_hq.T).reshape(T, B, H)
        deriv = 1 - Hs[1:] * Hs[1:]
        recurrent = np.zeros((B, H), np.float32)
        for t in range(T - 1, -1, -1):
            np.add(from_output[t], recurrent, out=dH)
            np.multiply(dH, deriv[t], out=dpre[t])
            np.dot(dpre[t], W_hh.T, out=recurrent)
        flat = dpre.reshape(T * B, H)
        grads = {"W_hh": Hs[:-1].reshape(T * B, H).T @ flat, "W_hq": hidden.T @ probs, "b_q": probs.sum(axis=0),
                 "b_h": flat.sum(axis=0), "W_xh": np.zeros((V, H), np.float32)}
        np.add.at(grads["W_xh"], ids, flat)
        norm = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        for name, grad in grads.items():
            if norm > THETA:
                grad *= THETA / norm
            P[name] -= LR * grad
        carried[0] = Hs[T].copy()

    return step


class TorchRNNModel:
    """``nn.RNN`` (tanh) + ``nn.Linear`` holding the same initial weights as the other rows."""

    def __init__(self, torch, init: dict, V: int, device: str) -> None:
        nn = torch.nn
        self.torch, self.V = torch, V
        self.rnn = nn.RNN(V, H, nonlinearity="tanh").to(device)
        self.dense = nn.Linear(H, V).to(device)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(init["W_xh"].T))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(init["W_hh"].T))
            self.rnn.bias_ih_l0.copy_(torch.from_numpy(init["b_h"]))
            self.rnn.bias_hh_l0.zero_()
            self.dense.weight.copy_(torch.from_numpy(init["W_hq"].T))
            self.dense.bias.copy_(torch.from_numpy(init["b_q"]))
        self.params = [*self.rnn.parameters(), *self.dense.parameters()]

    def __call__(self, ids, state):
        x = self.torch.nn.functional.one_hot(ids, self.V).float()
        out, state = self.rnn(x, state)
        return self.dense(out.reshape(-1, H)), state


def nn_rnn_train(torch, init: dict, V: int, B: int, device: str) -> Callable:
    """``nn.RNN`` + ``nn.Linear`` trained the usual way: cross-entropy, ``clip_grad_norm_``, ``optim.SGD``."""
    model = TorchRNNModel(torch, init, V, device)
    optimizer = torch.optim.SGD(model.params, lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    state = [torch.zeros((1, B, H), device=device)]

    def step(X, Y):
        X, Y = torch.as_tensor(X.T, device=device), torch.as_tensor(Y.T, device=device)
        y_hat, h = model(X, state[0])
        state[0] = h.detach()
        loss = loss_fn(y_hat, Y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.params, THETA)
        optimizer.step()
        loss.item()

    return step


def nn_rnn_generate(torch, init: dict, V: int, device: str, prefix: list[int], length: int,
                    no_grad: bool = True) -> Callable:
    """Greedy generation calling ``nn.RNN`` + ``nn.Linear`` once per character, as d2l's
    ``predict_ch8`` does (which leaves autograd on; ``no_grad`` turns it off, the faster way)."""
    model = TorchRNNModel(torch, init, V, device)

    def generate():
        state = torch.zeros((1, 1, H), device=device)
        for token in prefix:
            y_hat, state = model(torch.tensor([[token]], device=device), state)
        out = []
        for _ in range(length):
            token = int(y_hat.argmax(dim=1).reshape(1))
            out.append(token)
            y_hat, state = model(torch.tensor([[token]], device=device), state)
        return out

    if no_grad:
        return torch.no_grad()(generate)
    return generate


def eval_streams(ids, batch_size: int, tokens: int):
    """The first ``tokens`` predictions of ``ids`` as `seqkit.engine.evaluate` lays them out: (B, L)
    inputs and targets, B parallel streams."""
    length = tokens // batch_size
    xs = ids[: batch_size * length].reshape(batch_size, length)
    ys = ids[1: batch_size * length + 1].reshape(batch_size, length)
    return xs, ys


def nn_rnn_evaluate(torch, init: dict, V: int, device: str, ids, batch_size: int, tokens: int) -> Callable:
    """``nn.RNN`` + ``nn.Linear`` over held-out text under ``no_grad``, making exactly the passes
    seqkit's evaluate makes (warm-up contexts unscored, windows of T steps, state carried)."""
    model = TorchRNNModel(torch, init, V, device)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    xs, _ = eval_streams(ids, batch_size, tokens)
    from seqkit.engine import evaluation_passes

    passes = evaluation_passes(ids[: xs.size + 1], batch_size)

    def windows(tokens_2d, state):
        total = 0.0
        for start in range(0, tokens_2d.shape[1] - 1, T):
            X = torch.as_tensor(tokens_2d[:, start:start + T].T.copy(), device=device)
            Y = torch.as_tensor(tokens_2d[:, start + 1:start + T + 1].T.copy(), device=device)
            X = X[: Y.shape[0]]
            y_hat, state = model(X, state)
            total += loss_fn(y_hat, Y.reshape(-1)).item()
        return total, state

    @torch.no_grad()
    def run() -> float:
        total = 0.0
        for context, segments in passes:
            state = torch.zeros((1, segments.shape[0], H), device=device)
            if context is not None:
                _, state = windows(context, state)
            scored, _ = windows(segments, state)
            total += scored
        return total / xs.size

    return run


def eval_stream_tokens(batch_size: int, tokens: int) -> int:
    """How many tokens an evaluation over ``tokens`` predictions scores (whole streams only)."""
    return (tokens // batch_size) * batch_size


def seqkit_evaluate(network, params, ids, batch_size: int, tokens: int) -> Callable:
    """`seqkit.engine.evaluate` over the first ``tokens`` predictions of ``ids`` (the validation pass)."""
    from seqkit.engine import evaluate

    xs, _ = eval_streams(ids, batch_size, tokens)
    held_out = ids[: xs.size + 1]
    return lambda: evaluate(network, params, held_out, batch_size, T)


# -- seqkit rows (the engine's inner loop) ------------------------------------------------------
def seqkit_train(network, params, clipper) -> Callable:
    """What `seqkit.engine.fit` does per minibatch: loss and gradients (the loss left on the
    device), clipping, SGD, carried state, the running loss sum."""
    backend = network.backend
    state, total = [None], [0.0]

    def step(X, Y):
        if state[0] is None:
            state[0] = network.init_state(X.shape[0])
        loss, grads, state[0] = network.loss_and_grad_deferred(params, X, Y, state[0])
        total[0] = backend.accumulate(total[0], loss, Y.size)
        grads, _, _ = clipper.clip(backend, grads)
        backend.sgd_update(params, grads, LR)

    return step


def seqkit_generate(network, params, prefix, length: int) -> Callable:
    import numpy as np

    from seqkit.engine import predict
    from seqkit_decoders.sampling import GreedyDecoder

    return lambda: predict(network, params, prefix, length, GreedyDecoder(), np.random.default_rng(SEED))


# -- the matmul-only ceiling ----------------------------------------------------------------------
def matmul_ceiling(torch, V: int, B: int, device: str) -> Callable:
    """The products one minibatch of any BPTT implementation needs, into preallocated outputs."""
    g = torch.Generator(device="cpu").manual_seed(SEED)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device)

    N = T * B
    h, W, WT = rand(B, H), rand(H, H), rand(H, H)
    hidden, dpre, dlogits, W_hq = rand(N, H), rand(N, H), rand(N, V), rand(H, V)
    onehot_T = rand(V, N)
    step_out, w_out, x_out, q_out, l_out, d_out = (
        torch.empty(B, H, device=device), torch.empty(H, H, device=device), torch.empty(V, H, device=device),
        torch.empty(H, V, device=device), torch.empty(N, V, device=device), torch.empty(N, H, device=device))

    def run():
        for _ in range(T):
            torch.mm(h, W, out=step_out)        # forward recurrence
        torch.mm(hidden, W_hq, out=l_out)       # output layer
        torch.mm(dlogits, W_hq.T, out=d_out)    # its input gradient
        torch.mm(hidden.T, dlogits, out=q_out)  # dW_hq
        for _ in range(T):
            torch.mm(h, WT, out=step_out)       # backward recurrence
        torch.mm(hidden.T, dpre, out=w_out)     # dW_hh
        torch.mm(onehot_T, dpre, out=x_out)     # dW_xh (one-hot inputs)

    return run


def numpy_matmul_ceiling(V: int, B: int) -> Callable:
    """`matmul_ceiling`'s products through NumPy's BLAS: what the NumPy BPTT cannot go below."""
    import numpy as np

    rng = np.random.default_rng(SEED)

    def rand(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    N = T * B
    h, W, WT = rand(B, H), rand(H, H), rand(H, H)
    hidden, dpre, dlogits, W_hq, onehot_T = rand(N, H), rand(N, H), rand(N, V), rand(H, V), rand(V, N)
    step_out, w_out, x_out, q_out, l_out, d_out = (np.empty((B, H), np.float32), np.empty((H, H), np.float32),
                                                   np.empty((V, H), np.float32), np.empty((H, V), np.float32),
                                                   np.empty((N, V), np.float32), np.empty((N, H), np.float32))

    def run():
        for _ in range(T):
            np.dot(h, W, out=step_out)
        np.dot(hidden, W_hq, out=l_out)
        np.dot(dlogits, W_hq.T, out=d_out)
        np.dot(hidden.T, dlogits, out=q_out)
        for _ in range(T):
            np.dot(h, WT, out=step_out)
        np.dot(hidden.T, dpre, out=w_out)
        np.dot(onehot_T, dpre, out=x_out)

    return run


# -- the roofline ----------------------------------------------------------------------------------
def flops_per_token(kind: str, V: int) -> float | None:
    """Matrix-product FLOPs one token costs (one-hot input), or None for rows not counted."""
    if kind in ("train", "ceiling"):
        return 6.0 * H * H + 6.0 * H * V
    if kind == "evaluate":
        return 2.0 * H * H + 2.0 * H * V
    return None


def gemm_probe(repeats: int = 5) -> dict[str, list[float]]:
    """GFLOP/s of a (PROBE_N)³ float32 product through NumPy's BLAS and through torch."""
    import numpy as np
    import torch

    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((PROBE_N, PROBE_N), dtype=np.float32)
    b = rng.standard_normal((PROBE_N, PROBE_N), dtype=np.float32)
    c = np.empty_like(a)
    ta, tb, tc = torch.from_numpy(a.copy()), torch.from_numpy(b.copy()), torch.empty(PROBE_N, PROBE_N)
    work = {"numpy": lambda: np.dot(a, b, out=c), "torch": lambda: torch.mm(ta, tb, out=tc)}
    flops = 2.0 * PROBE_N ** 3
    runs: dict[str, list[float]] = {name: [] for name in work}
    for name, fn in work.items():
        fn()
    for _ in range(repeats):
        for name, fn in work.items():
            start = time.perf_counter()
            fn()
            runs[name].append(flops / (time.perf_counter() - start) / 1e9)
    return runs


# -- measuring ------------------------------------------------------------------------------------
def measure_rounds(rows: list[tuple[Row, Callable[[], float]]], repeats: int) -> None:
    """Interleave the repeats: round r times every row once, so load changes hit all rows."""
    for _ in range(repeats):
        for row, once in rows:
            row.runs.append(once())


def train_timer(step: Callable, batches: list, warmup: int, sync: Callable[[], None]) -> Callable[[], float]:
    """A function returning tokens/s of ``step`` over ``batches[warmup:]`` (warm-up run on first call)."""
    warm, timed = batches[:warmup], batches[warmup:]
    tokens = sum(Y.size for _, Y in timed)
    pending = [True]

    def once() -> float:
        if pending[0]:
            for X, Y in warm:
                step(X, Y)
            pending[0] = False
        sync()
        start = time.perf_counter()
        for X, Y in timed:
            step(X, Y)
        sync()
        return tokens / (time.perf_counter() - start)

    return once


def rate_timer(work: Callable, units: int, sync: Callable[[], None], calls: int = 1) -> Callable[[], float]:
    pending = [True]

    def once() -> float:
        if pending[0]:
            work()
            pending[0] = False
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            work()
        sync()
        return units * calls / (time.perf_counter() - start)

    return once


def torch_rows(args: argparse.Namespace, batch_size: int, ids, vocab) -> list[Row]:
    import numpy as np
    import torch

    from seqkit.api import make_network
    from seqkit.network import ModelSpec
    from seqkit.plugins import get_registry
    from seqkit_torch.backend import cpu_has_bfloat16
    from seqkit_torch.fused import FusedRNN
    from seqkit_torch.module import ModuleRNN

    registry = get_registry()
    device = "cuda" if args.device == "cuda" else "cpu"
    V = len(vocab)
    spec = ModelSpec(registry.create("cell", "rnn-tanh"), V, H)
    init = {k: v.astype(np.float32) for k, v in spec.init_params(np.random.default_rng(SEED)).items()}
    clipper = registry.create("clipper", "norm", clip_theta=THETA)
    quick = args.quick
    count = args.minibatches or (3 if quick else (20 if batch_size <= 64 else 10))
    warmup = 1 if quick else 3
    batches = minibatches(ids, batch_size, warmup + count)
    torch_sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    prefix = vocab.encode(list(PREFIX))
    length = 100 if quick else GENERATE_CHARS

    def backend_for(name: str, matmul_dtype: str = "float32", cuda_graphs: bool = False):
        extra = {"matmul_dtype": matmul_dtype, "cuda_graphs": cuda_graphs} if name == "torch" else {}
        return registry.create("backend", name, device=device if name == "torch" else "cpu", dtype="float32", **extra)

    def seqkit_network(name: str, impl: str, matmul_dtype: str = "float32", cuda_graphs: bool = False):
        backend = backend_for(name, matmul_dtype, cuda_graphs)
        if impl == "bptt":
            network = FusedRNN(backend, spec)
        elif impl == "nn.RNN":
            network = ModuleRNN(backend, spec)
        else:
            network = make_network(backend, spec, impl)
        return network, {k: backend.asarray(v) for k, v in init.items()}

    train: list[tuple[str, Callable]] = [
        (D2L_SCRATCH_ROW, lambda: d2l_torch(torch, init, V, batch_size, device)),
        (BASELINE_TRAIN, lambda: nn_rnn_train(torch, init, V, batch_size, device)),
        ("seqkit torch scratch", lambda: seqkit_train(*seqkit_network("torch", "scratch"), clipper)),
        ("seqkit torch fused", lambda: seqkit_train(*seqkit_network("torch", "fused"), clipper)),
    ]
    fused_alternative = "nn.RNN" if device == "cpu" else "bptt"
    train.append((f"seqkit torch fused, {fused_alternative} variant",
                  lambda: seqkit_train(*seqkit_network("torch", fused_alternative), clipper)))
    if device == "cuda":
        train.append((CUDA_GRAPHS_ROW, lambda: seqkit_train(*seqkit_network("torch", "fused", cuda_graphs=True),
                                                            clipper)))
    if device == "cpu" and cpu_has_bfloat16():
        train.append((BFLOAT16_ROW, lambda: seqkit_train(*seqkit_network("torch", "fused", "bfloat16"), clipper)))
    if device == "cpu":
        train += [
            ("seqkit numpy scratch", lambda: seqkit_train(*seqkit_network("numpy", "scratch"), clipper)),
            ("seqkit numpy fused", lambda: seqkit_train(*seqkit_network("numpy", "fused"), clipper)),
            (NUMPY_PLAIN_ROW, lambda: numpy_plain_bptt(init, V, batch_size)),
        ]
    rows: list[tuple[Row, Callable[[], float]]] = []
    for name, make in train:
        row_batches = batches
        sync = torch_sync if name.startswith(("torch", "seqkit torch")) else (lambda: None)
        rows.append((Row(name, "train", batch_size), train_timer(make(), row_batches, warmup, sync)))
    rows.append((Row("matmul-only ceiling", "ceiling", batch_size),
                 rate_timer(matmul_ceiling(torch, V, batch_size, device), T * batch_size, torch_sync, calls=count)))
    if device == "cpu":
        rows.append((Row("matmul-only ceiling, numpy BLAS", "ceiling", batch_size),
                     rate_timer(numpy_matmul_ceiling(V, batch_size), T * batch_size, lambda: None, calls=count)))

    eval_tokens = (warmup + count) * batch_size * T
    evaluations = [
        (BASELINE_EVALUATE, nn_rnn_evaluate(torch, init, V, device, ids, batch_size, eval_tokens), torch_sync),
        ("seqkit torch fused", seqkit_evaluate(*seqkit_network("torch", "fused"), ids, batch_size, eval_tokens),
         torch_sync)]
    if device == "cpu":
        evaluations.append(("seqkit numpy fused", seqkit_evaluate(*seqkit_network("numpy", "fused"), ids,
                                                                  batch_size, eval_tokens), lambda: None))
    for name, work, sync in evaluations:
        rows.append((Row(name, "evaluate", batch_size), rate_timer(work, eval_stream_tokens(batch_size, eval_tokens),
                                                                   sync)))

    generate = [(BASELINE_GENERATE, nn_rnn_generate(torch, init, V, device, list(prefix), length), torch_sync),
                (D2L_GENERATE, nn_rnn_generate(torch, init, V, device, list(prefix), length, False), torch_sync),
                ("seqkit torch fused", seqkit_generate(*seqkit_network("torch", "fused"), prefix, length), torch_sync)]
    if device == "cpu":
        generate.append(("seqkit numpy fused", seqkit_generate(*seqkit_network("numpy", "fused"), prefix, length),
                         lambda: None))
    if batch_size == args.batch_sizes[0]:
        for name, work, sync in generate:
            rows.append((Row(name, "generate", 1), rate_timer(work, length, sync)))
    measure_rounds(rows, args.repeats)
    return [row for row, _ in rows]


def mxnet_rows(args: argparse.Namespace, batch_size: int) -> list[Row]:
    """Rows from ``bench_mxnet.py`` run in its own process (empty if MXNet or the script is absent)."""
    import importlib.util

    script = HERE / "bench_mxnet.py"
    if args.no_mxnet or args.device != "cpu" or not script.exists():
        return []
    if args.mxnet_python is None and importlib.util.find_spec("mxnet") is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mxnet.json"
        cmd = [args.mxnet_python or sys.executable, str(script), "--json", str(out), "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--batch-size", str(batch_size)] + (["--quick"] if args.quick else [])
        env = dict(os.environ, **({"SEQKIT_DATA": args.data_dir} if args.data_dir else {}))
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        except OSError as exc:  # e.g. a --mxnet-python that does not exist
            print(f"MXNet rows skipped: cannot run {cmd[0]} ({exc.strerror})", file=sys.stderr)
            return []
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            print(f"MXNet rows skipped: bench_mxnet.py failed ({tail[0]})", file=sys.stderr)
            return []
        data = json.loads(out.read_text())
    return [Row(r["name"], r["kind"], 1 if r["kind"] == "generate" else batch_size, list(r["runs"]),
                source="bench_mxnet.py (subprocess)") for r in data["rows"]]


# -- the table ------------------------------------------------------------------------------------
def ratios(rows: list[Row]) -> dict[int, float | None]:
    """Each row's value over the ``nn.RNN`` row of its kind and batch size."""
    base: dict[tuple[str, int], float] = {}
    for row in rows:
        if BASELINES.get(row.kind) == row.name:
            base[(row.kind, row.batch_size)] = row.value
    out = {}
    for i, row in enumerate(rows):
        kind = "train" if row.kind == "ceiling" else row.kind
        ref = base.get((kind, row.batch_size))
        out[i] = row.value / ref if ref else None
    return out


def paired_ratios(rows: list[Row]) -> dict[int, float | None]:
    """Each row over the ``nn.RNN`` row of its kind and batch size round by round, then the median.

    Rounds are interleaved, so a machine that gets busier or quieter during the run moves a row and
    its baseline together; the per-round ratio cancels that drift, which the ratio of the two
    medians does not. Only rows timed in the same rounds as their baseline (the same process, as
    many runs) get one; MXNet's rows, timed in a subprocess afterwards, do not."""
    base: dict[tuple[str, int], Row] = {}
    for row in rows:
        if BASELINES.get(row.kind) == row.name:
            base[(row.kind, row.batch_size)] = row
    out: dict[int, float | None] = {}
    for i, row in enumerate(rows):
        ref = base.get(("train" if row.kind == "ceiling" else row.kind, row.batch_size))
        paired = (ref is not None and ref.source == row.source and len(ref.runs) == len(row.runs) > 0
                  and all(r > 0 for r in ref.runs))
        out[i] = statistics.median(r / b for r, b in zip(row.runs, ref.runs)) if paired else None
    return out


def summary(rows: list[Row]) -> list[dict]:
    """Per training batch size: the best seqkit path against nn.RNN and the ceiling."""
    result = []
    for batch in sorted({r.batch_size for r in rows if r.kind == "train"}):
        group = [r for r in rows if r.batch_size == batch]
        seqkit = [r for r in group if r.kind == "train" and r.name.startswith("seqkit")]
        base = next((r for r in group if r.name == BASELINE_TRAIN), None)
        ceiling = next((r for r in group if r.name == "matmul-only ceiling"), None)
        if not seqkit or base is None or ceiling is None:
            continue
        best = max(seqkit, key=lambda r: r.value)
        best32 = max((r for r in seqkit if r.name != BFLOAT16_ROW), key=lambda r: r.value)
        numpy_fused = next((r for r in seqkit if r.name == "seqkit numpy fused"), None)
        numpy_ceiling = next((r for r in group if r.name == "matmul-only ceiling, numpy BLAS"), None)
        numpy_plain = next((r for r in group if r.name == NUMPY_PLAIN_ROW), None)
        result.append({"batch_size": batch, "best_seqkit": best.name, "best_over_nn_rnn": best.value / base.value,
                       "best_over_ceiling": best.value / ceiling.value,
                       "nn_rnn_over_ceiling": base.value / ceiling.value,
                       "best_float32": best32.name, "best_float32_over_nn_rnn": best32.value / base.value,
                       "best_float32_over_ceiling": best32.value / ceiling.value,
                       "numpy_fused_over_numpy_ceiling": numpy_fused.value / numpy_ceiling.value
                       if numpy_fused and numpy_ceiling else None,
                       "numpy_fused_over_hand_written": numpy_fused.value / numpy_plain.value
                       if numpy_fused and numpy_plain else None})
    for batch in sorted({r.batch_size for r in rows if r.kind == "evaluate"}):
        group = [r for r in rows if r.kind == "evaluate" and r.batch_size == batch]
        base = next((r for r in group if r.name == BASELINE_EVALUATE), None)
        seqkit = [r for r in group if r.name.startswith("seqkit")]
        if base and seqkit:
            best = max(seqkit, key=lambda r: r.value)
            result.append({"evaluate_batch_size": batch, "evaluate_best": best.name,
                           "evaluate_over_nn_rnn": best.value / base.value})
    if any(r.name == CUDA_GRAPHS_ROW for r in rows):  # a GPU run: set beside the book's GPU figures
        for batch in sorted({r.batch_size for r in rows if r.kind == "train"}):
            group = [r for r in rows if r.batch_size == batch and r.kind == "train"]
            named = {r.name: r.value for r in group}
            seqkit = [r for r in group if r.name.startswith("seqkit")]
            if seqkit and BASELINE_TRAIN in named and D2L_SCRATCH_ROW in named:
                best = max(seqkit, key=lambda r: r.value)
                result.append({"d2l_book_batch_size": batch, "d2l_scratch": named[D2L_SCRATCH_ROW],
                               "nn_rnn": named[BASELINE_TRAIN], "best": best.name, "best_value": best.value})
    gen = [r for r in rows if r.kind == "generate"]
    base = next((r for r in gen if r.name == BASELINE_GENERATE), None)
    d2l = next((r for r in gen if r.name == D2L_GENERATE), None)
    seqkit = [r for r in gen if r.name.startswith("seqkit")]
    if base and seqkit:
        best = max(seqkit, key=lambda r: r.value)
        result.append({"generation_best": best.name, "generation_over_nn_rnn": best.value / base.value,
                       "generation_over_d2l_predict": best.value / d2l.value if d2l else None})
    return result


def meta(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    device = "cpu"
    if args.device == "cuda":
        device = torch.cuda.get_device_name(0)
    return {
        "threads": args.threads, "torch_threads": torch.get_num_threads(), "device": args.device,
        "device_name": device, "cpu": _cpu_name(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": np.__version__, "numpy_blas": _numpy_blas(),
        "mxnet_python": args.mxnet_python, "repeats": args.repeats, "quick": args.quick,
        "workload": f"timemachine one-hot, T={T}, H={H}, tanh, clip {THETA}, SGD lr {LR}, float32",
        "env": {k: os.environ.get(k) for k in (*THREAD_VARS, "OPENBLAS_CORETYPE")},
        "load_before": getattr(args, "load_before", None), "load_after": _load(),
    }


def _numpy_blas() -> str:
    """NumPy's BLAS library, version and kernel family (e.g. ``openblas 0.3.23.dev SkylakeX``)."""
    import numpy as np  # noqa: F401  (loads the BLAS threadpoolctl reports)
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            return " ".join(str(info.get(k)) for k in ("internal_api", "version", "architecture") if info.get(k))
    return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> float | None:
    """The 1-minute load average (other processes on the machine make every figure noisy)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def roofline(rows: list[Row], probe: dict[str, list[float]], V: int) -> tuple[float, dict[int, tuple[float, float]]]:
    """The machine's GEMM peak (the faster library's best probe run) and, per counted row, its
    (GFLOP/s, fraction of that peak)."""
    peak = max(max(runs) for runs in probe.values())
    out = {}
    for i, row in enumerate(rows):
        flops = flops_per_token(row.kind, V)
        if flops is not None:
            rate = row.value * flops / 1e9
            out[i] = (rate, rate / peak)
    return peak, out


def print_table(rows: list[Row], info: dict, notes: list[dict]) -> None:
    rel = ratios(rows)
    peak, reached = roofline(rows, info["gemm_probe"], info["vocab_size"])
    quick = " (QUICK: not a figure)" if info["quick"] else ""
    mxnet_ran = any(row.source.startswith("bench_mxnet.py") for row in rows)
    print(f"seqkit benchmark: {info['workload']}; device {info['device_name']} ({info['cpu']}); "
          f"threads {info['threads']} (torch {info['torch_threads']}); median of {info['repeats']}{quick}")
    print(f"torch {info['torch']}, numpy {info['numpy']} ({info.get('numpy_blas', 'BLAS unknown')}), "
          f"python {info['python']}"
          + (f", MXNet rows from {info['mxnet_python']}" if info.get("mxnet_python") and mxnet_ran else "") + "; env "
          + ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None)
          + f"; load average {info['load_before']} before, {info['load_after']} after")
    probe = info["gemm_probe"]
    print(f"machine: {PROBE_N}^3 float32 GEMM "
          + ", ".join(f"{lib} {max(r):.1f} GFLOP/s (median {statistics.median(r):.1f})" for lib, r in probe.items())
          + f"; roofline {peak:.1f} GFLOP/s; FLOPs/token: train {flops_per_token('train', info['vocab_size']) / 1e6:.2f}M"
          + f" (6H^2+6HV), evaluate {flops_per_token('evaluate', info['vocab_size']) / 1e6:.2f}M (2H^2+2HV)")
    paired = paired_ratios(rows)
    header = (f"{'row':<48} {'kind':<8} {'B':>5} {'median':>12} {'unit':<8} {'x nn.RNN':>8} {'paired':>6} "
              f"{'GFLOP/s':>8} {'of peak':>7}  runs")
    print(header)
    print("-" * len(header))
    for i, row in enumerate(rows):
        unit = "chars/s" if row.kind == "generate" else "tok/s"
        ratio = f"{rel[i]:.2f}" if rel[i] is not None else "-"
        pair = f"{paired[i]:.2f}" if paired[i] is not None else "-"
        rate, frac = (f"{reached[i][0]:.1f}", f"{reached[i][1]:.2f}") if i in reached else ("", "")
        runs = ", ".join(f"{r:,.0f}" for r in row.runs)
        print(f"{row.name:<48} {row.kind:<8} {row.batch_size:>5} {row.value:>12,.0f} {unit:<8} {ratio:>8} {pair:>6} "
              f"{rate:>8} {frac:>7}  [{runs}]")
    for note in notes:
        if "evaluate_best" in note:
            print(f"evaluation B={note['evaluate_batch_size']}: best seqkit path ({note['evaluate_best']}) = "
                  f"{note['evaluate_over_nn_rnn']:.2f}x nn.RNN under no_grad")
        elif "batch_size" in note:
            print(f"B={note['batch_size']}: best seqkit path ({note['best_seqkit']}) = "
                  f"{note['best_over_nn_rnn']:.2f}x nn.RNN, {note['best_over_ceiling']:.2f} of the matmul-only "
                  f"ceiling (nn.RNN: {note['nn_rnn_over_ceiling']:.2f} of it)"
                  + (f"; best float32 path ({note['best_float32']}) = {note['best_float32_over_nn_rnn']:.2f}x, "
                     f"{note['best_float32_over_ceiling']:.2f} of the ceiling"
                     if note["best_float32"] != note["best_seqkit"] else "")
                  + (f"; seqkit numpy fused = {note['numpy_fused_over_numpy_ceiling']:.2f} of the NumPy-BLAS ceiling"
                     if note["numpy_fused_over_numpy_ceiling"] else "")
                  + (f", {note['numpy_fused_over_hand_written']:.2f}x the hand-written NumPy BPTT"
                     if note["numpy_fused_over_hand_written"] else ""))
        elif "d2l_book_batch_size" in note:
            print(f"d2l book's GPU figures (its GPU, B=32): scratch {D2L_BOOK_GPU['scratch'] / 1e3:.1f}k, concise "
                  f"{D2L_BOOK_GPU['concise'] / 1e3:.0f}k tok/s; here at B={note['d2l_book_batch_size']}: "
                  f"d2l-style scratch {note['d2l_scratch'] / 1e3:,.1f}k, nn.RNN {note['nn_rnn'] / 1e3:,.1f}k, "
                  f"best seqkit path ({note['best']}) {note['best_value'] / 1e3:,.1f}k = "
                  f"{note['best_value'] / D2L_BOOK_GPU['concise']:.2f}x the book's concise figure")
        else:
            d2l = note["generation_over_d2l_predict"]
            print(f"generation: best seqkit path ({note['generation_best']}) = "
                  f"{note['generation_over_nn_rnn']:.2f}x stepping nn.RNN under no_grad"
                  + (f", {d2l:.2f}x d2l's predict_ch8" if d2l else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = _load()
    set_threads(args.threads)
    import torch  # noqa: E402  (after the thread variables)

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    ids, vocab = load_corpus(args.data_dir)
    probe = gemm_probe(3 if args.quick else 5)
    rows: list[Row] = []
    for batch_size in args.batch_sizes:
        rows += torch_rows(args, batch_size, ids, vocab)
    for batch_size in args.batch_sizes:  # after every torch row: MXNet's runtime stays out of this process
        rows += mxnet_rows(args, batch_size)
    info, notes = meta(args), summary(rows)
    info["gemm_probe"], info["vocab_size"] = probe, len(vocab)
    print_table(rows, info, notes)
    if args.json:
        rel, paired = ratios(rows), paired_ratios(rows)
        peak, reached = roofline(rows, probe, len(vocab))
        info["roofline_gflops"] = peak
        table = [{"name": r.name, "kind": r.kind, "batch_size": r.batch_size, "value": r.value, "runs": r.runs,
                  "unit": "chars/s" if r.kind == "generate" else "tokens/s", "ratio_to_nn_rnn": rel[i],
                  "paired_ratio_to_nn_rnn": paired[i],
                  "gflops": reached[i][0] if i in reached else None,
                  "fraction_of_peak": reached[i][1] if i in reached else None,
                  "source": r.source} for i, r in enumerate(rows)]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": info, "rows": table, "summary": notes}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
