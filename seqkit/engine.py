"""The loops: fit (truncated BPTT with SGD), evaluate (perplexity, bits per token), predict.

The engine never imports a framework: it talks to a `Network` (and through it to a `Backend`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from seqkit.backend import Params
from seqkit.clipper import Clipper
from seqkit.decoder import Decoder
from seqkit.dropout import draw_masks
from seqkit.errors import DataError, DivergedError
from seqkit.network import Network
from seqkit.optimizer import Optimizer, OptimizerState
from seqkit.running import RunningSums
from seqkit.sampler import Sampler
from seqkit.schedule import Schedule

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
    schedule: Schedule | None = None
    steps_per_epoch: int = 1
    detach: bool = True
    dropout: float = 0.0
    seed: int = 0
    time_budget_s: float | None = None

    @property
    def total_steps(self) -> int:
        """The planned number of updates of the run (what a schedule spreads itself over)."""
        return self.epochs * max(1, self.steps_per_epoch)

    def expected_steps(self, step: int, elapsed_s: float) -> int:
        """The number of updates the run will make: the planned one, or under a time budget the
        number the pace so far (``step`` updates in ``elapsed_s`` seconds) fits into the budget."""
        if self.time_budget_s is None or step <= 0 or elapsed_s <= 0:
            return self.total_steps
        return min(self.total_steps, max(step + 1, round(step * self.time_budget_s / elapsed_s)))

    def lr_at(self, epoch: int, step: int = 0, elapsed_s: float = 0.0) -> float:
        """The learning rate of update ``step`` (0-based over the run) in ``epoch`` (from 1): the
        schedule's, or the base rate without one. Under a time budget the schedule spreads over
        the updates the budget is expected to allow (``elapsed_s``: the run's time so far)."""
        if self.schedule is None:
            return self.lr
        return self.schedule.lr(self.lr, step, self.expected_steps(step, elapsed_s), epoch)

    def budget_spent(self, elapsed_s: float) -> bool:
        return self.time_budget_s is not None and elapsed_s >= self.time_budget_s


class Clock:
    """The run's wall time in `fit`, including what earlier processes spent before a resume."""

    def __init__(self, spent_s: float = 0.0) -> None:
        self.spent_s = spent_s
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.spent_s + time.perf_counter() - self.started


class BudgetSpent(Exception):
    """`fit` stopped because ``--time-budget`` ran out (after recording the epoch it cut short)."""


@dataclass
class FitState:
    """Where training stands, enough to stop after any minibatch and continue exactly from there.

    ``epoch`` epochs are complete and ``position`` minibatches of the next one are done.
    ``sampler_rng`` is the sampler generator's ``bit_generator.state`` at the start of that next
    epoch: its minibatches are regenerated from it and the first ``position`` skipped. ``carried``
    is the hidden state after the last minibatch where the sampler carries it (native arrays),
    and ``sums`` (read as ``loss_sum``, ``norm_sum``, ``clipped``) and ``tokens`` are the partial
    epoch's metrics. Reading a sum may wait for the device (`seqkit.running`)."""

    epoch: int = 0
    position: int = 0
    sampler_rng: dict | None = None
    carried: tuple | None = None
    sums: RunningSums = field(default_factory=RunningSums)
    tokens: int = 0
    train_time: float = 0.0
    spent_s: float = 0.0  # the run's wall time in fit when this state was reached, across resumes

    @property
    def loss_sum(self) -> float:
        """Sum over the epoch's minibatches so far of mean loss × predicted tokens."""
        return self.sums.loss

    @property
    def norm_sum(self) -> float:
        """Sum of the pre-clip global gradient norms."""
        return self.sums.norm

    @property
    def clipped(self) -> int:
        """How many of the updates were clipped."""
        return self.sums.clipped


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
    optimizer: Optimizer | None = None,
    opt_state: OptimizerState | None = None,
    clock: Clock | None = None,
) -> list[dict]:
    """Train ``params`` in place; return one metrics row per epoch (also passed to ``on_epoch``).

    ``resume`` continues from a `FitState` (``rng`` is set to its ``sampler_rng``). ``on_step``
    gets the state after every minibatch and may raise `KeyboardInterrupt` to stop; on any
    `KeyboardInterrupt` ``on_interrupt`` gets the newest consistent state (none when the interrupt
    hit a parameter update) before the exception propagates. ``optimizer`` (with its ``opt_state``,
    updated in place) defaults to the lesson's plain SGD, ``backend.sgd_update``.

    Under ``settings.time_budget_s`` the epoch running when the budget is spent ends after its
    current minibatch; its row (marked ``budget_spent``) is recorded like any other, and then
    `BudgetSpent` is raised. ``clock`` (default: a `Clock` from ``resume.spent_s``) is read
    twice per minibatch and once per epoch, in the same order on every data-parallel rank."""
    resume = resume or FitState(epoch=start_epoch - 1)
    clock = clock or Clock(resume.spent_s)
    loop = _Loop(network, params, train_ids, sampler, clipper, settings, rng, on_step, optimizer, opt_state, clock)
    if resume.sampler_rng is not None:
        rng.bit_generator.state = resume.sampler_rng
    loop.last = resume
    history: list[dict] = []
    try:
        for epoch in range(resume.epoch + 1, settings.epochs + 1):
            if settings.budget_spent(clock.elapsed()):
                raise BudgetSpent()
            part = resume if resume.position and epoch == resume.epoch + 1 else \
                FitState(epoch - 1, sampler_rng=rng.bit_generator.state)
            with np.errstate(all="ignore"):  # overflow and NaN surface as DivergedError, not as warnings
                done = loop.run_epoch(epoch, part)
            row = _metrics_row(epoch, loop.last_lr, done)
            if val_ids is not None and len(val_ids) > 1:
                with np.errstate(all="ignore"):
                    result = evaluate(network, params, val_ids, settings.batch_size, settings.num_steps)
                row["val_ppl"], row["val_bpc"] = result["ppl"], result["bits_per_token"]
            row["elapsed_s"] = clock.elapsed()
            if loop.cut_short:
                row["budget_spent"] = True
            history.append(row)
            loop.last = FitState(epoch, sampler_rng=rng.bit_generator.state, spent_s=row["elapsed_s"])
            if on_epoch is not None:
                on_epoch(row)
            if loop.cut_short:
                raise BudgetSpent()
    except KeyboardInterrupt:
        loop.check_window()  # a divergence not read yet is the news, and its parameters are not saved
        if on_interrupt is not None and not loop.updating:
            on_interrupt(loop.last)
        raise
    return history


class _Loop:
    """One epoch of minibatches: state policy, loss and gradients, clipping, SGD, running sums.

    The loss is read on the host (and checked for divergence) every
    ``backend.host_check_interval`` minibatches, over the window since the last check: with 1
    (every CPU backend) before the update it would corrupt, with more after the window's updates."""

    def __init__(self, network: Network, params: Params, train_ids: np.ndarray, sampler: Sampler,
                 clipper: Clipper, settings: TrainSettings, rng: np.random.Generator,
                 on_step: StepCallback | None, optimizer: Optimizer | None = None,
                 opt_state: OptimizerState | None = None, clock: Clock | None = None) -> None:
        self.network, self.params, self.train_ids = network, params, train_ids
        self.optimizer, self.opt_state = optimizer, opt_state if opt_state is not None else OptimizerState()
        self.sampler, self.clipper, self.settings, self.rng = sampler, clipper, settings, rng
        self.on_step = on_step
        self.carry = sampler.carries_state and settings.detach
        self.whole_epoch_graph = sampler.carries_state and not settings.detach
        self.last = FitState()
        self.updating = False
        self.last_lr = settings.lr
        self.clock = clock or Clock()
        self.cut_short = False  # the time budget ended the last epoch early
        self.interval = max(1, int(getattr(network.backend, "host_check_interval", 1)))
        self.window = _Window()

    def run_epoch(self, epoch: int, part: FitState) -> FitState:
        """Train one epoch, continuing ``part`` (its first ``position`` minibatches are replayed
        from the sampler but not trained); return the finished epoch's sums."""
        settings, backend = self.settings, self.network.backend
        epoch_start = time.perf_counter() - part.train_time
        sums = FitState(epoch - 1, 0, part.sampler_rng, part.carried if self.carry else None, part.sums, part.tokens)
        earlier: list[tuple[np.ndarray, np.ndarray]] = []
        for X, Y in self.sampler.batches(self.train_ids, settings.batch_size, settings.num_steps, self.rng):
            if self.whole_epoch_graph:
                earlier.append((X, Y))
            if sums.position < part.position:  # done before the checkpoint
                sums.position += 1
                continue
            X, Y, state, loss_from = self._inputs(X, Y, sums.carried, earlier)
            step = self.opt_state.step
            lr = self.last_lr = settings.lr_at(epoch, step, self.clock.elapsed())
            spec = self.network.spec
            masks = draw_masks(settings.dropout, settings.seed, step, X.shape[0], X.shape[1], spec.hidden_size,
                               spec.embedding_dim)
            extra = {"masks": masks} if masks is not None else {}
            loss, grads, final = self.network.loss_and_grad_deferred(self.params, X, Y, state, loss_from, **extra)
            n = Y.shape[0] * (Y.shape[1] - loss_from)
            self.window.add(backend, loss, n, epoch, sums.position + 1)
            if self.window.minibatches >= self.interval:
                self.check_window()
            grads, norm, was_clipped = self.clipper.clip(backend, grads)
            self.updating = True
            if self.optimizer is None:
                backend.sgd_update(self.params, grads, lr)
                self.opt_state.step += 1
            else:
                self.optimizer.update(backend, self.params, grads, lr, self.opt_state)
            sums = FitState(epoch - 1, sums.position + 1, part.sampler_rng, final if self.carry else None,
                            sums.sums.add(backend, loss, n, norm, was_clipped), sums.tokens + n,
                            time.perf_counter() - epoch_start, self.clock.elapsed())
            self.last, self.updating = sums, False
            if self.on_step is not None:
                self.on_step(sums)
            if settings.budget_spent(sums.spent_s):
                self.cut_short = True
                break
        if sums.position < part.position and not self.cut_short:
            raise DataError(f"the sampler gave {sums.position} minibatches in epoch {epoch}, fewer than the "
                            f"{part.position} the checkpoint had done: the training data changed")
        self.check_window()
        backend.synchronize()
        sums.train_time = time.perf_counter() - epoch_start
        return sums

    def check_window(self) -> None:
        """Read the losses of the minibatches since the last check; raise `DivergedError` if
        their mean is not finite or beyond ``MAX_LOSS``."""
        window, self.window = self.window, _Window()
        if not window.tokens:
            return
        mean = float(window.total) / window.tokens
        if math.isfinite(mean) and mean <= MAX_LOSS:
            return
        where = f"minibatch {window.last}" if window.minibatches == 1 else f"minibatches {window.first}-{window.last}"
        raise DivergedError(
            f"loss became {mean} at epoch {window.epoch}, {where} (lr {self.last_lr:g}): lower --lr, "
            "clip harder with --clipper norm and a smaller --clip-theta, or reduce --hidden")


    def _inputs(self, X: np.ndarray, Y: np.ndarray, carried: tuple | None,
                earlier: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, tuple, int]:
        """The minibatch as the network sees it: (X, Y, initial state, first scored step)."""
        if self.whole_epoch_graph:
            # No detaching: the gradient flows through every earlier minibatch of the epoch, so
            # each one is rerun from the epoch's start and only its own steps are scored.
            loss_from = sum(x.shape[1] for x, _ in earlier[:-1])
            X = np.concatenate([x for x, _ in earlier], axis=1)
            Y = np.concatenate([y for _, y in earlier], axis=1)
            return X, Y, self.network.init_state(X.shape[0]), loss_from
        if self.carry and carried is not None:
            return X, Y, carried, 0
        return X, Y, self.network.init_state(X.shape[0]), 0


@dataclass
class _Window:
    """The minibatches trained since the loss was last read on the host."""

    total: object = 0.0  # sum of mean loss × tokens: a number or a 0-d device array
    tokens: int = 0
    epoch: int = 0
    first: int = 0
    last: int = 0

    @property
    def minibatches(self) -> int:
        return self.last - self.first + 1 if self.tokens else 0

    def add(self, backend, loss, tokens: int, epoch: int, position: int) -> None:
        if not self.tokens:
            self.first = position
        self.total = backend.accumulate(self.total, loss, tokens)
        self.tokens += tokens
        self.epoch, self.last = epoch, position


def _metrics_row(epoch: int, lr: float, done: FitState) -> dict:
    return {
        "epoch": epoch,
        "train_ppl": perplexity(done.loss_sum / done.tokens),
        "val_ppl": None,
        "val_bpc": None,
        "lr": lr,
        "grad_norm": done.norm_sum / done.position,
        "clipped_fraction": done.clipped / done.position,
        "tokens_per_s": done.tokens / done.train_time if done.train_time > 0 else None,
        "elapsed_s": None,
    }


EVAL_WARMUP = 256  # tokens of preceding text each evaluation stream reads before it is scored


def evaluate(network: Network, params: Params, ids: np.ndarray, batch_size: int, num_steps: int,
             warmup: int = EVAL_WARMUP) -> dict:
    """Perplexity and bits per token of ``ids``: every token but the first is predicted exactly
    once, and the figure does not depend on ``batch_size`` (which only sets how many streams run
    side by side).

    The first ``warmup`` predictions are scored as one stream from the initial state, as a reader
    of the whole text would score them. The rest is cut into up to ``batch_size`` contiguous
    streams of at least ``warmup`` tokens; each stream first reads the ``warmup`` tokens before
    its segment (unscored) so it starts from a state that has seen its context, then scores its
    segment with the state carried across windows of ``num_steps``. The few tokens left over
    are scored by one more warmed-up stream."""
    ids = np.asarray(ids)
    total = 0.0
    for context, segments in evaluation_passes(ids, batch_size, warmup):
        state = network.init_state(len(segments))
        if context is not None:
            _, state = _windows(network, params, context, num_steps, state)  # read, not scored
        scored, _ = _windows(network, params, segments, num_steps, state)
        total += float(scored)
    predicted = len(ids) - 1
    mean = total / predicted
    return {"ppl": perplexity(mean), "bits_per_token": mean / LN2, "loss": mean, "tokens": predicted}


def evaluation_passes(ids: np.ndarray, batch_size: int, warmup: int = EVAL_WARMUP) -> list[tuple]:
    """The passes `evaluate` makes over ``ids``: ``(context, segments)`` pairs of token arrays.
    ``context`` (streams, warmup + 1) is read first, unscored (None for the opening stream);
    ``segments`` (streams, length + 1) are scored. Every prediction is scored exactly once."""
    predicted = len(ids) - 1
    warmup = max(1, int(warmup))
    head = min(warmup, predicted)
    passes: list[tuple] = [(None, ids[None, :head + 1])]
    done, rest = head, predicted - head
    if rest:
        streams = max(1, min(batch_size, rest // warmup))
        length = rest // streams
        starts = head + np.arange(streams) * length
        passes.append((np.stack([ids[s - warmup: s + 1] for s in starts]),
                       np.stack([ids[s: s + length + 1] for s in starts])))
        done = head + streams * length
    if done < predicted:
        passes.append((ids[None, done - warmup: done + 1], ids[None, done: predicted + 1]))
    return passes


def _windows(network: Network, params: Params, tokens: np.ndarray, num_steps: int, state: tuple) -> tuple:
    """Summed loss of predicting ``tokens[:, 1:]`` from ``tokens[:, :-1]``, window by window (a
    number, or a 0-d device array: nothing waits for the device here), and the state after the
    last window."""
    xs, ys = tokens[:, :-1], tokens[:, 1:]
    total = 0.0
    for start in range(0, xs.shape[1], num_steps):
        X, Y = xs[:, start:start + num_steps], ys[:, start:start + num_steps]
        loss, state = network.loss_deferred(params, X, Y, state)
        total = network.backend.accumulate(total, loss, Y.size)
    return total, state


def predict(
    network: Network, params: Params, prefix_ids: np.ndarray, length: int, decoder: Decoder,
    rng: np.random.Generator,
) -> list[int]:
    """Warm the state up over the prefix, then decode ``length`` tokens (one sample)."""
    return sample(network, params, prefix_ids, length, decoder, rng, 1)[0]


def sample(
    network: Network, params: Params, prefix_ids: np.ndarray, length: int, decoder: Decoder,
    rng: np.random.Generator, num_samples: int = 1,
) -> list[list[int]]:
    """``num_samples`` continuations of the prefix, decoded as one batch by ``decoder.search``.

    A single sample with a per-token decoder takes the network's ``decoding`` fast path (the same
    choices, one token at a time, without batch bookkeeping)."""
    if num_samples == 1 and not decoder.owns_search():
        return [_decode_one(network, params, prefix_ids, length, decoder, rng)]
    if length == 0:
        return [[] for _ in range(num_samples)]
    state = network.init_state(1)
    logits = None
    for token in prefix_ids:
        logits, state = network.step(params, np.array([int(token)], dtype=np.int64), state)
    batch = _Batch(network, params, _select_rows(network.backend, state, np.zeros(num_samples, dtype=np.int64)))
    return decoder.search(np.repeat(np.asarray(logits), num_samples, axis=0), batch.advance, length, rng)


def _decode_one(network: Network, params: Params, prefix_ids: np.ndarray, length: int, decoder: Decoder,
                rng: np.random.Generator) -> list[int]:
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


class _Batch:
    """The sequences a search is extending: their state, advanced on request (`seqkit.decoder.Advance`)."""

    def __init__(self, network: Network, params: Params, state: tuple) -> None:
        self.network, self.params, self.state = network, params, state

    def advance(self, rows: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        rows, tokens = np.asarray(rows, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
        if rows.shape != tokens.shape or rows.ndim != 1 or not len(rows):
            raise ValueError(f"advance needs rows and tokens of the same length >= 1, got {rows.shape} and "
                             f"{tokens.shape}")
        state = _select_rows(self.network.backend, self.state, rows)
        logits, self.state = self.network.step(self.params, tokens, state)
        return np.asarray(logits)


def _select_rows(backend, state: tuple, rows: np.ndarray) -> tuple:
    """The state of sequences ``rows`` (repeats allowed) as a new batch."""
    if all(len(getattr(s, "shape", ())) == 2 for s in state):
        index = backend.asarray(rows)
        return tuple(backend.take(s, index) for s in state)
    return tuple(backend.asarray(backend.to_numpy(s)[rows]) for s in state)
