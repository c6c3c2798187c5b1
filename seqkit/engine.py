"""The loops: fit (truncated BPTT with SGD), evaluate (perplexity, bits per token), predict.

The engine never imports a framework: it talks to a `Network` (and through it to a `Backend`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from seqkit.backend import Params
from seqkit.clipper import Clipper
from seqkit.decoder import Decoder
from seqkit.errors import DataError, DivergedError
from seqkit.network import Network
from seqkit.sampler import Sampler

LN2 = math.log(2.0)
MAX_LOSS = 700.0  # exp() of more overflows a float: treat as divergence


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy), or inf when it overflows."""
    return math.exp(mean_loss) if mean_loss < MAX_LOSS else math.inf


@dataclass
class TrainSettings:
    """The hyper-parameters the fit loop reads."""

    epochs: int
    batch_size: int
    num_steps: int
    lr: float
    lr_decay: float = 1.0
    lr_decay_every: int = 0
    detach: bool = True

    def lr_at(self, epoch: int) -> float:
        """Step decay: ``lr * lr_decay ** ((epoch - 1) // lr_decay_every)`` (epochs count from 1)."""
        if not self.lr_decay_every:
            return self.lr
        return self.lr * self.lr_decay ** ((epoch - 1) // self.lr_decay_every)


@dataclass
class FitState:
    """Where training stands, enough to stop after any minibatch and continue exactly from there.

    ``epoch`` epochs are complete and ``position`` minibatches of the next one are done.
    ``sampler_rng`` is the sampler generator's ``bit_generator.state`` at the start of that next
    epoch: its minibatches are regenerated from it and the first ``position`` skipped. ``carried``
    is the hidden state after the last minibatch where the sampler carries it (native arrays),
    and the sums are the partial epoch's metrics."""

    epoch: int = 0
    position: int = 0
    sampler_rng: dict | None = None
    carried: tuple | None = None
    loss_sum: float = 0.0
    norm_sum: float = 0.0
    tokens: int = 0
    clipped: int = 0
    train_time: float = 0.0


EpochCallback = Callable[[dict], None]
StepCallback = Callable[[FitState], None]


def fit(
    network: Network,
    params: Params,
    train_ids: np.ndarray,
    sampler: Sampler,
    clipper: Clipper,
    settings: TrainSettings,
    rng: np.random.Generator,
    val_ids: np.ndarray | None = None,
    on_epoch: EpochCallback | None = None,
    start_epoch: int = 1,
    resume: FitState | None = None,
    on_step: StepCallback | None = None,
    on_interrupt: StepCallback | None = None,
) -> list[dict]:
    """Train ``params`` in place; return one metrics row per epoch (also passed to ``on_epoch``).

    ``resume`` continues from a `FitState` (``rng`` is set to its ``sampler_rng``). ``on_step``
    gets the state after every minibatch and may raise `KeyboardInterrupt` to stop; on any
    `KeyboardInterrupt` ``on_interrupt`` gets the newest consistent state (none when the interrupt
    hit a parameter update) before the exception propagates."""
    backend = network.backend
    history: list[dict] = []
    started = time.perf_counter()
    resume = resume or FitState(epoch=start_epoch - 1)
    if resume.sampler_rng is not None:
        rng.bit_generator.state = resume.sampler_rng
    last, updating = resume, False
    carry = sampler.carries_state and settings.detach
    try:
        for epoch in range(resume.epoch + 1, settings.epochs + 1):
            lr = settings.lr_at(epoch)
            part = resume if resume.position and epoch == resume.epoch + 1 else \
                FitState(epoch - 1, sampler_rng=rng.bit_generator.state)
            epoch_start = time.perf_counter() - part.train_time
            loss_sum, norm_sum, tokens, steps, clipped = part.loss_sum, part.norm_sum, part.tokens, 0, part.clipped
            carried = part.carried if carry else None
            earlier_x: list[np.ndarray] = []
            earlier_y: list[np.ndarray] = []
            batches = sampler.batches(train_ids, settings.batch_size, settings.num_steps, rng)
            for X, Y in batches:
                if steps < part.position:  # done before the checkpoint: replay the sampler only
                    steps += 1
                    if sampler.carries_state and not settings.detach:
                        earlier_x.append(X)
                        earlier_y.append(Y)
                    continue
                loss_from = 0
                if sampler.carries_state and not settings.detach:
                    # No detaching: the gradient flows through every earlier minibatch of the epoch, so
                    # each one is rerun from the epoch's start and only its own steps are scored.
                    loss_from = sum(x.shape[1] for x in earlier_x)
                    earlier_x.append(X)
                    earlier_y.append(Y)
                    X, Y = np.concatenate(earlier_x, axis=1), np.concatenate(earlier_y, axis=1)
                    state = network.init_state(X.shape[0])
                elif sampler.carries_state and carried is not None:
                    state = carried
                else:
                    state = network.init_state(X.shape[0])
                loss, grads, carried = network.loss_and_grad(params, X, Y, state, loss_from)
                if not math.isfinite(loss) or loss > MAX_LOSS:
                    raise DivergedError(
                        f"loss became {loss} at epoch {epoch}, minibatch {steps + 1} (lr {lr:g}): lower --lr, "
                        "clip harder with --clipper norm and a smaller --clip-theta, or reduce --hidden")
                grads, norm, was_clipped = clipper.clip(backend, grads)
                updating = True
                backend.sgd_update(params, grads, lr)
                n = Y.shape[0] * (Y.shape[1] - loss_from)
                loss_sum += loss * n
                tokens += n
                norm_sum += norm
                clipped += was_clipped
                steps += 1
                last = FitState(epoch - 1, steps, part.sampler_rng, carried if carry else None, loss_sum, norm_sum,
                                tokens, clipped, time.perf_counter() - epoch_start)
                updating = False
                if on_step is not None:
                    on_step(last)
            if steps < part.position:
                raise DataError(f"the sampler gave {steps} minibatches in epoch {epoch}, fewer than the "
                                f"{part.position} the checkpoint had done: the training data changed")
            backend.synchronize()
            train_time = time.perf_counter() - epoch_start
            row = {
                "epoch": epoch,
                "train_ppl": perplexity(loss_sum / tokens),
                "val_ppl": None,
                "val_bpc": None,
                "lr": lr,
                "grad_norm": norm_sum / steps,
                "clipped_fraction": clipped / steps,
                "tokens_per_s": tokens / train_time if train_time > 0 else None,
                "elapsed_s": None,
            }
            if val_ids is not None and len(val_ids) > 1:
                result = evaluate(network, params, val_ids, settings.batch_size, settings.num_steps)
                row["val_ppl"], row["val_bpc"] = result["ppl"], result["bits_per_token"]
            row["elapsed_s"] = time.perf_counter() - started
            history.append(row)
            last = FitState(epoch, sampler_rng=rng.bit_generator.state)
            if on_epoch is not None:
                on_epoch(row)
    except KeyboardInterrupt:
        if on_interrupt is not None and not updating:
            on_interrupt(last)
        raise
    return history


def evaluate(network: Network, params: Params, ids: np.ndarray, batch_size: int, num_steps: int) -> dict:
    """Perplexity and bits per token of ``ids`` read as ``batch_size`` parallel streams with the state
    carried across windows of ``num_steps`` (every token but the first is predicted once)."""
    predicted = len(ids) - 1
    streams = max(1, min(batch_size, predicted))
    length = predicted // streams
    xs = ids[: streams * length].reshape(streams, length)
    ys = ids[1: streams * length + 1].reshape(streams, length)
    state = network.init_state(streams)
    total = 0.0
    for start in range(0, length, num_steps):
        X, Y = xs[:, start:start + num_steps], ys[:, start:start + num_steps]
        loss, state = network.loss(params, X, Y, state)
        total += loss * Y.size
    mean = total / (streams * length)
    return {"ppl": perplexity(mean), "bits_per_token": mean / LN2, "loss": mean, "tokens": streams * length}


def predict(
    network: Network, params: Params, prefix_ids: np.ndarray, length: int, decoder: Decoder,
    rng: np.random.Generator,
) -> list[int]:
    """Warm the state up over the prefix, then decode ``length`` tokens one at a time."""
    generated: list[int] = []
    with network.decoding(params, network.init_state(1)) as feed:
        for token in prefix_ids:
            logits = feed(int(token))
        for i in range(length):
            token = decoder.choose(logits, rng)
            generated.append(token)
            if i + 1 < length:
                logits = feed(token)
    return generated
