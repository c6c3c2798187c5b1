"""The Python API: ``seqkit.train(**options)`` returns a `Run`; the CLI is a thin layer over it.

`train` reads as the pipeline it runs: resolve the configuration, create the components, load the
data, initialise or restore the parameters, fit, save.
"""

from __future__ import annotations

import importlib.util
import math
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

import seqkit
from seqkit.backend import Backend, Params
from seqkit.checkpoint import (
    Checkpoint, component_origins, dataset_fingerprint, generator_from_state, missing_components, read_checkpoint,
    run_state, save_run,
)
from seqkit.config import CORE_OPTIONS, KIND_OPTIONS, RunConfig, resolve
from seqkit.configfile import read_config_file
from seqkit.dataset import Dataset, load_dataset
from seqkit import distributed
from seqkit.engine import BudgetSpent, Clock, FitState, TrainSettings, evaluate, fit, perplexity
from seqkit.engine import sample as sample_ids
from seqkit.errors import ConfigError, DataError, DivergedError, SeqkitError, TrainingInterrupted
from seqkit.logger import Logger
from seqkit.limits import check_prefix
from seqkit.network import GenericNetwork, ModelSpec, Network
from seqkit.optimizer import OptimizerState
from seqkit.output import append_jsonl, prepare_out_dir, write_json_atomic
from seqkit.plugins import Registry, get_registry
from seqkit.resources import check_memory
from seqkit.resume import check_resume_data, resume_config, saved_values
from seqkit.selection import BEST_DIR, EVALS_FILE, EarlyStop, Selection
from seqkit.runlock import holds_run_locks
from seqkit.store import CheckpointError, write_checkpoint
from seqkit.vocab import Vocab, detokenize, tokenize

Progress = Callable[[str, Any], None]


def make_network(backend: Backend, spec: ModelSpec, impl: str, dropout: float = 0.0) -> Network:
    """The fused network when asked for (or ``auto`` and available), else the generic one. With
    ``dropout``, a fused network that cannot apply it is skipped under ``auto`` and refused under
    ``fused``."""
    if impl == "scratch":
        return GenericNetwork(backend, spec)
    fused = backend.fused_network(spec)
    if fused is None and impl == "fused":
        known = ", ".join(backend.fused_cells()) or "none"
        raise ConfigError(
            f"backend {backend.name!r} has no fused implementation of cell {spec.cell.name!r} "
            f"(fused cells: {known}); use --impl scratch")
    if fused is not None and dropout and not fused.supports_dropout:
        if impl == "fused":
            raise ConfigError(f"the fused {spec.cell.name!r} network of backend {backend.name!r} cannot apply "
                              "--dropout: use --impl scratch (or --impl auto), or leave --dropout out")
        fused = None
    network = fused or GenericNetwork(backend, spec)
    backend.check_network(network, dropout)
    return network


def seed_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """Independent seed sequences for parameter init, the sampler and the decoder."""
    init, sampler, decoder = np.random.SeedSequence(seed).spawn(3)
    return {"init": init, "sampler": sampler, "decoder": decoder}


def configure(
    options: Mapping[str, Any] | None = None, preset: str | None = None, config: str | Path | None = None,
    registry: Registry | None = None,
) -> RunConfig:
    """The resolved configuration of a run: the declared defaults, the corpus' recommended values
    (not under a preset: a preset is the whole recipe), then the ``preset``'s values, then the
    ``config`` file's, then ``options`` (set explicitly, so an option no selected component uses
    is an error)."""
    registry = registry or get_registry()
    base: dict[str, Any] = {}
    if preset is not None:
        base.update(registry.preset(preset).values)
    if config is not None:
        base.update(read_config_file(config))
    return resolve(registry, dict(options or {}), base=base, corpus_defaults=preset is None)


@dataclass
class Components:
    """The components a run uses, created from a resolved configuration."""

    backend: Backend
    cell: Any
    sampler: Any
    clipper: Any
    optimizer: Any
    schedule: Any
    decoder: Any
    corpus: Any


def create(registry: Registry, config: RunConfig, kind: str) -> Any:
    """The component of ``kind`` the configuration selects, built with its resolved options."""
    return registry.create(kind, config[KIND_OPTIONS[kind]], **config.component_options(kind))


def create_components(registry: Registry, config: RunConfig) -> Components:
    """Every component of a training run (frameworks are imported here, not before)."""
    return Components(**{kind: create(registry, config, kind) for kind in
                         ("cell", "sampler", "clipper", "optimizer", "schedule", "decoder", "corpus", "backend")})


class Run:
    """A trained model with its vocabulary, resolved configuration and per-epoch metrics (``history``)."""

    def __init__(
        self, config: RunConfig, vocab: Vocab, network: Network, params: Params,
        history: list[dict] | None = None, out_dir: Path | None = None, default_prefix: str = "",
        registry: Registry | None = None,
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.network = network
        self.params = params
        self.history = history or []
        self.out_dir = out_dir
        self.default_prefix = default_prefix
        self.registry = registry or get_registry()
        self.fit_state: FitState | None = None  # where training stands (for checkpoints)
        self.opt_state = OptimizerState()  # the optimizer's slots and update count
        self.rng_states: dict[str, dict] = {}  # saved NumPy generator states: "init", "decoder"
        self.data_info: dict | None = None  # token counts and hash of the training text
        self.saved_options: dict[str, Any] = config.to_dict()  # every option the run trained with
        self.selection = Selection()  # the best validation loss so far (checkpointed)

    @property
    def backend(self) -> Backend:
        return self.network.backend

    @property
    def prefixes(self) -> list[str]:
        """The sample prefixes: the configured ones, else the corpus default."""
        return list(self.config.prefix or [self.default_prefix])

    def prefix_ids(self, prefix: str) -> np.ndarray:
        """Token ids of ``prefix``; tokens outside the vocabulary raise `ConfigError` naming them."""
        check_prefix(prefix)
        tokens = tokenize(prefix, self.config.tokens)
        if not tokens:
            raise ConfigError("--prefix must contain at least one token")
        unknown = self.vocab.unknown(tokens)
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:10])
            raise ConfigError(f"prefix {prefix!r} has tokens outside the vocabulary: {shown}; "
                              "use only tokens that occur in the training text")
        return self.vocab.encode(tokens)

    def decoder(self, name: str | None = None, **options: Any) -> Any:
        """A decoder: ``name`` (default: the run's) with ``options`` over the run's own values."""
        explicit = {**({"decoder": name} if name else {}), **options}
        config = resolve(self.registry, explicit, base=self.config.to_dict(), only_kinds=("decoder",))
        return create(self.registry, config, "decoder")

    def predict(
        self, prefix: str | None = None, length: int | None = None, decoder: str | None = None,
        seed: int | None = None, rng: np.random.Generator | None = None, **decoder_options: Any,
    ) -> str:
        """The prefix followed by ``length`` generated tokens (defaults from the run's config).

        ``decoder`` and its options (``temperature=0.8``, a plugin's ``top_k=5``) default to the
        run's. Random decoders draw from ``rng``, else from a generator seeded with ``seed``, else
        from a fresh copy of the run's decoder stream."""
        return self.samples(prefix, 1, length, decoder, seed, rng, **decoder_options)[0]

    def samples(
        self, prefix: str | None = None, num_samples: int = 1, length: int | None = None, decoder: str | None = None,
        seed: int | None = None, rng: np.random.Generator | None = None, **decoder_options: Any,
    ) -> list[str]:
        """``num_samples`` continuations of one prefix, generated as one batch (each the prefix plus
        ``length`` tokens); arguments as for `predict`. A search decoder (``beam``) gives every
        sample its best continuation."""
        config = self.config
        prefix = self.prefixes[0] if prefix is None else prefix
        length = config.predict_len if length is None else length
        CORE_OPTIONS["predict_len"].validate(length)
        if num_samples < 1:
            raise ConfigError(f"--num-samples must be >= 1, got {num_samples}")
        chooser = self.decoder(decoder, **decoder_options)
        if rng is None:
            rng = self.decoder_rng() if seed is None else np.random.default_rng(seed)
        texts = []
        for ids in sample_ids(self.network, self.params, self.prefix_ids(prefix), length, chooser, rng, num_samples):
            generated = detokenize(self.vocab.decode(ids), config.tokens)
            separator = " " if config.tokens == "word" and generated else ""  # words: one space after the prefix
            texts.append(prefix + separator + generated)
        return texts

    def decoder_rng(self) -> np.random.Generator:
        """A fresh generator at the start of the run's decoder stream."""
        saved = self.rng_states.get("decoder")
        if saved:
            return generator_from_state(saved)
        return np.random.default_rng(seed_streams(self.config.seed)["decoder"])

    def save(self, path: str | Path) -> Path:
        """Write a portable checkpoint atomically into ``path/checkpoint/`` (or into ``path`` when it
        already is a checkpoint folder); returns the checkpoint folder. See docs/checkpoints.md."""
        return save_run(self, path)

    def evaluate(self, text: str) -> dict:
        """Perplexity and bits per token of ``text``; tokens outside the vocabulary count as
        ``<unk>`` where the vocabulary has one, and raise `DataError` otherwise."""
        tokens = tokenize(text, self.config.tokens)
        if len(tokens) < 2:
            raise DataError("text to evaluate needs at least 2 tokens")
        unknown = self.vocab.unknown(tokens)
        if unknown and self.vocab.unk is None:
            shown = ", ".join(repr(t) for t in unknown[:10])
            raise DataError(f"text has tokens outside the vocabulary ({shown}) and the vocabulary has no <unk>")
        ids = self.vocab.encode(tokens, map_unknown=True)
        result = self.evaluate_ids(ids)
        unknown_set = set(unknown)
        result["unknown_tokens"] = sum(t in unknown_set for t in tokens)
        result["unknown_policy"] = "counted as <unk>" if unknown else "none"
        return result

    def evaluate_ids(self, ids: np.ndarray) -> dict:
        """Perplexity and bits per token of token ids (see `seqkit.engine.evaluate`)."""
        result = evaluate(self.network, self.params, np.asarray(ids), self.config.batch_size, self.config.num_steps)
        result.update(unknown_tokens=0, unknown_policy="none")
        return result

    def held_out(self) -> tuple[np.ndarray, str]:
        """The token ids of the run's held-out tail, read again from its corpus with its options,
        and a description; without a held-out tail, its training text (said so)."""
        config = resolve(self.registry, {}, base=self.saved_options, only_kinds=("corpus",))
        data = load_dataset(config, create(self.registry, config, "corpus"))
        if list(data.vocab.idx_to_token) != list(self.vocab.idx_to_token):
            raise DataError(f"the run's corpus {config.corpus!r} no longer gives the vocabulary it was trained on: "
                            "pass --corpus-file with the text to evaluate")
        name = config.get("corpus_file") if config.corpus == "file" else config.corpus
        if len(data.val_ids) >= 2:
            return data.val_ids, f"{name}, its held-out tail"
        return data.train_ids, f"{name}, its training text (the run held nothing out)"


def _check_long_enough(config: RunConfig, sampler: Any, data: Dataset) -> None:
    if sampler.min_batches(len(data.train_ids), config.batch_size, config.num_steps) < 1:
        raise ConfigError(
            f"--num-steps {config.num_steps} with --batch-size {config.batch_size} needs more than "
            f"{len(data.train_ids)} training tokens for one minibatch; lower --num-steps or --batch-size")


@holds_run_locks
def train(
    progress: Progress | bool | None = True, registry: Registry | None = None, resume: str | Path | None = None,
    should_stop: Callable[[], int | None] | None = None, preset: str | None = None,
    config: str | Path | None = None, **options: Any,
) -> Run:
    """Train a model and return the `Run`. ``options`` are the CLI's with underscores, component
    options included (``decoder="temperature", temperature=0.8``); ``preset=NAME`` and
    ``config=FILE.toml`` supply values underneath them.

    ``progress=True`` (the default) shows live progress in a terminal or notebook and plain lines
    elsewhere; ``False`` is silent; a callable ``progress(event, payload)`` is called with
    ``("start", info)``, ``("step", FitState)`` after every minibatch, ``("epoch", row)``,
    ``("sample", text)`` and ``("checkpoint", folder)``. With ``out=DIR`` the folder gets
    ``metrics.jsonl`` (a header row with the configuration, then one row per epoch),
    ``summary.json`` and ``checkpoint/`` (every ``checkpoint_every`` epochs, at the end and when
    interrupted). ``resume=DIR`` continues the run checkpointed there; ``options`` then holds only
    what to change. ``should_stop()`` is polled after every minibatch: a signal number stops
    training with a checkpoint and raises `TrainingInterrupted` (as does Ctrl-C)."""
    registry = registry or get_registry()
    printer = None
    if progress is True and not distributed.is_main_process():
        progress = False  # data-parallel: only rank 0 prints
    if progress is True:
        from seqkit.console import RunPrinter

        printer = RunPrinter()
    notify = printer or (progress if callable(progress) else None)
    try:
        return _train(notify, registry, resume, should_stop, preset, config, options)
    finally:
        if printer is not None:
            printer.close()


def _train(notify: Progress | None, registry: Registry, resume: str | Path | None,
           should_stop: Callable[[], int | None] | None, preset: str | None, config: str | Path | None,
           options: dict[str, Any]) -> Run:
    # 1. configuration
    ckpt = read_checkpoint(resume) if resume is not None else None
    if ckpt is None:
        run_config = configure(options, preset, config, registry)
    elif preset is not None or config is not None:
        raise ConfigError("--resume continues a run with its own configuration: leave out --preset and --config")
    else:
        run_config = resume_config(registry, ckpt, options)
        ckpt.model_spec(registry, run_config)  # the checkpoint is consistent in itself

    # 2. components
    parts = create_components(registry, run_config)
    spec_cell = parts.cell

    # 3. data
    data = load_dataset(run_config, parts.corpus)
    _check_long_enough(run_config, parts.sampler, data)
    fingerprint = dataset_fingerprint(data.train_ids, data.val_ids, data.val_fraction)
    if ckpt is not None:
        check_resume_data(ckpt, data.vocab, fingerprint)
    spec = ModelSpec(spec_cell, len(data.vocab), run_config.hidden, run_config.embedding, run_config.init)
    check_memory(run_config, spec, parts.backend, parts.optimizer, parts.sampler, len(data.train_ids))
    network = make_network(parts.backend, spec, run_config.impl, run_config.dropout)
    parallel = distributed.setup(parts.backend, run_config.batch_size)  # None in one process
    if parallel is not None:
        network = distributed.ShardedNetwork(network, parallel)

    # 4. initialise or restore
    if ckpt is None:
        run = _fresh_run(run_config, data, network, parts, None, registry)
    else:
        ckpt.check_model(spec, run_config.batch_size)
        run = _restored_run(ckpt, run_config, network, registry, None)
        run.fit_state = distributed.shard_fit_state(parallel, run.fit_state)
    run.data_info = fingerprint
    for prefix in run.prefixes:
        run.prefix_ids(prefix)  # fail on unseen prefix tokens before training, not after
    main = parallel is None or parallel.world.is_main  # data-parallel: only rank 0 writes
    run.out_dir = prepare_out_dir(run_config.out) if run_config.out and main else None  # once all checks passed

    # 5. fit, watched by the progress callback and the selected loggers
    info = _start_info(run, data, spec, ckpt, parts.sampler)
    observers = [_ProgressObserver(notify)] if notify else []
    if main:  # data-parallel: the other ranks log nothing
        observers += [registry.create("logger", name, **run_config.component_options("logger", name))
                      for name in run_config.logger or []]
    with registry.watching(observers):
        return _fit_and_save(run, data, parts, info, should_stop, parallel)


def _fit_and_save(run: Run, data: Dataset, parts: Components, info: dict,
                  should_stop: Callable[[], int | None] | None, parallel: distributed.DataParallel | None) -> Run:
    run_config, network, out_dir, hook = run.config, run.network, run.out_dir, run.registry.hook
    main = parallel is None or parallel.world.is_main
    hook.seqkit_run_started(run=run, info=info)
    sampler_rng = np.random.default_rng(seed_streams(run_config.seed)["sampler"])
    recorder = _Recorder(run, info, run.prefixes, sampler_rng, distributed.agreed_stop(parallel, should_stop),
                         data.val_ids, parallel)
    settings = TrainSettings(
        epochs=run_config.epochs, batch_size=run_config.batch_size, num_steps=run_config.num_steps,
        lr=run_config.lr, schedule=parts.schedule, steps_per_epoch=info["batches_per_epoch"],
        detach=not run_config.no_detach, dropout=run_config.dropout, seed=run_config.seed,
        time_budget_s=run_config.time_budget * 60 if run_config.time_budget else None)
    try:
        fit(network, run.params, data.train_ids, parts.sampler, parts.clipper, settings, sampler_rng,
            data.val_ids if len(data.val_ids) else None, recorder.on_epoch,
            resume=run.fit_state, on_step=recorder.on_step, on_interrupt=recorder.on_interrupt,
            optimizer=parts.optimizer, opt_state=run.opt_state, clock=_run_clock(run, parallel))
    except DivergedError as exc:
        recorder.write_summary(None, error=str(exc))
        recorder.write_plot()
        hook.seqkit_run_finished(run=run, status="diverged", error=str(exc))
        if out_dir:
            raise DivergedError(f"{exc} (metrics so far are in {out_dir})") from None
        raise
    except (EarlyStop, BudgetSpent) as stop:
        status = "early-stopped" if isinstance(stop, EarlyStop) else "budget-spent"
        recorder.save(recorder.last_state)
        if parallel is not None:
            run.network = network.inner
        samples = [recorder.sample(prefix, len(run.history)) for prefix in run.prefixes] if main else []
        recorder.write_summary(samples, status=status)
        recorder.write_plot()
        hook.seqkit_run_finished(run=run, status=status, error=None)
        return run
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        recorder.write_summary(None, status="interrupted")
        recorder.write_plot()
        message = recorder.interrupted_message(signum)
        hook.seqkit_run_finished(run=run, status="interrupted", error=message)
        raise TrainingInterrupted(signum, message, recorder.stopped_checkpoint, run) from None
    except Exception as exc:
        hook.seqkit_run_finished(run=run, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise

    # 6. save
    recorder.save(FitState(run_config.epochs, sampler_rng=sampler_rng.bit_generator.state,
                           spent_s=recorder.last_state.spent_s))
    if parallel is not None:
        run.network = network.inner  # training is over: the Run predicts and evaluates alone
    samples = [recorder.sample(prefix, run_config.epochs) for prefix in run.prefixes] if main else []
    recorder.write_summary(samples)
    recorder.write_plot()
    hook.seqkit_run_finished(run=run, status="completed", error=None)
    return run


def _run_clock(run: Run, parallel: distributed.DataParallel | None) -> Clock:
    """The clock `fit` reads, from the time the run has already spent; one every rank agrees on
    when data-parallel under a time budget (the learning rate and the stop follow it)."""
    spent = run.fit_state.spent_s if run.fit_state else 0.0
    if parallel is not None and run.config.time_budget:
        return distributed.AgreedClock(parallel, spent)
    return Clock(spent)


def _seconds_per_minibatch(run: Run, data: Dataset) -> float | None:
    """A probe for the first line's time estimate: the faster of two forward-backward passes on the
    first minibatch-sized window (parameters untouched, no random draws), plus 10 % for the rest."""
    config = run.config
    size = config.batch_size * config.num_steps
    if len(data.train_ids) <= size + 1 or config.no_detach:
        return None
    X = data.train_ids[:size].reshape(config.batch_size, config.num_steps)
    Y = data.train_ids[1:size + 1].reshape(config.batch_size, config.num_steps)
    times = []
    for _ in range(2):
        started = time.perf_counter()
        run.network.loss_and_grad(run.params, X, Y, run.network.init_state(config.batch_size), 0)
        run.backend.synchronize()
        times.append(time.perf_counter() - started)
    return min(times) * 1.1


def _fresh_run(config: RunConfig, data: Dataset, network: Network, parts: Components, out_dir: Path | None,
               registry: Registry) -> Run:
    streams = seed_streams(config.seed)
    init_rng = np.random.default_rng(streams["init"])
    backend = network.backend
    params = {k: backend.asarray(v) for k, v in network.spec.init_params(init_rng).items()}
    run = Run(config, data.vocab, network, params, [], out_dir, data.default_prefix, registry)
    run.rng_states = {"init": init_rng.bit_generator.state,
                      "decoder": np.random.default_rng(streams["decoder"]).bit_generator.state}
    run.opt_state = parts.optimizer.init_state(backend, params)
    return run


def _restored_run(ckpt: Checkpoint, config: RunConfig, network: Network, registry: Registry,
                  out_dir: Path | None) -> Run:
    backend = network.backend
    params = {k: backend.asarray(v) for k, v in sorted(ckpt.params.items())}  # init order: sums follow it
    run = Run(config, Vocab.from_list(ckpt.vocab), network, params, [dict(r) for r in ckpt.metrics], out_dir,
              ckpt.state["default_prefix"], registry)
    run.fit_state = ckpt.fit_state(backend.asarray)
    run.opt_state = ckpt.optimizer_state(backend.asarray)
    run.rng_states = ckpt.rng_states
    run.data_info = ckpt.state.get("data")
    run.saved_options = saved_values(ckpt, registry)
    run.selection = Selection.from_dict(ckpt.state.get("selection"))
    return run


def _start_info(run: Run, data: Dataset, spec: ModelSpec, ckpt: Checkpoint | None, sampler: Any) -> dict:
    backend, config = run.backend, run.config
    batches = max(1, sampler.min_batches(len(data.train_ids), config.batch_size, config.num_steps))
    epochs_left = config.epochs - (ckpt.epoch if ckpt else 0)
    per_batch = _seconds_per_minibatch(run, data)
    return {
        "corpus": config.corpus, "cell": config.cell, "hidden": config.hidden, "optimizer": config.optimizer,
        "lr": config.lr, "log_every": config.log_every, "batches_per_epoch": batches,
        "estimate_s": per_batch * batches * epochs_left if per_batch else None,
        "time_budget_s": config.time_budget * 60 if config.time_budget else None,
        "spent_s": ckpt.state["training"].get("spent_s", 0.0) if ckpt else 0.0,
        "backend": backend.name, "device": backend.device, "impl": run.network.impl, "dtype": backend.dtype,
        "matmul_dtype": getattr(backend, "matmul_dtype", backend.dtype),
        "vocab_size": len(data.vocab), "train_tokens": len(data.train_ids), "val_tokens": len(data.val_ids),
        "num_params": int(sum(np.prod(s.shape) for s in spec.param_specs().values())),
        "out": str(run.out_dir) if run.out_dir else None, "epochs": run.config.epochs,
        "resumed": {"from": str(ckpt.folder), "epoch": ckpt.epoch, "position": ckpt.position} if ckpt else None,
    }


class _ProgressObserver(Logger):
    """The ``progress(event, payload)`` callback of `train`, as a run watcher."""

    def __init__(self, notify: Progress) -> None:
        self.notify = notify

    def seqkit_run_started(self, run: Any, info: dict) -> None:
        self.notify("start", info)

    def seqkit_step_ended(self, run: Any, state: Any) -> None:
        self.notify("step", state)

    def seqkit_epoch_ended(self, run: Any, row: dict) -> None:
        self.notify("epoch", row)

    def seqkit_sample_generated(self, run: Any, text: str, epoch: int) -> None:
        self.notify("sample", text)

    def seqkit_checkpoint_saved(self, run: Any, folder: Path) -> None:
        self.notify("checkpoint", str(folder))


class _Recorder:
    """A training run's side effects: samples, checkpoints, summary.json, stop requests, and the
    lifecycle hooks that tell every watcher (metrics.jsonl, the console, loggers) about them."""

    def __init__(self, run: Run, info: dict, prefixes: list[str], sampler_rng: np.random.Generator,
                 should_stop: Callable[[], int | None] | None, val_ids: np.ndarray | None = None,
                 parallel: distributed.DataParallel | None = None) -> None:
        self.run, self.info, self.prefixes = run, info, prefixes
        self.parallel = parallel
        self.agreed_stop = False  # data-parallel: every rank stopped at the same minibatch
        self.val_ids = val_ids if val_ids is not None and len(val_ids) > 1 else None
        self.last_state: FitState = run.fit_state or FitState(epoch=len(run.history))
        self.hook = run.registry.hook
        self.sampler_rng = sampler_rng
        self.should_stop = should_stop
        self.out_dir = run.out_dir
        self.saved: list[Path] = []
        self.stopped: FitState | None = None
        self.failure: str | None = None
        self.started = time.perf_counter()

    def sample(self, prefix: str, epoch: int) -> str:
        text = self.run.predict(prefix)
        self.hook.seqkit_sample_generated(run=self.run, text=text, epoch=epoch)
        return text

    @property
    def last_checkpoint(self) -> Path | None:
        return self.saved[-1] if self.saved else None

    @property
    def stopped_checkpoint(self) -> Path | None:
        """The checkpoint written for the interruption itself, if any."""
        return self.last_checkpoint if self.stopped else None

    def save(self, state: FitState) -> None:
        self.run.fit_state = state = distributed.gather_fit_state(self.parallel, state)
        if self.out_dir:
            self.saved.append(self.run.save(self.out_dir))
            self.hook.seqkit_checkpoint_saved(run=self.run, folder=self.saved[-1])

    def select(self, loss: float, state: FitState) -> None:
        """Model selection after an evaluation of the held-out text: keep the best checkpoint,
        stop when the patience of ``--early-stop`` is spent."""
        run = self.run
        improved = run.selection.observe(loss, state.epoch + (1 if state.position else 0), run.opt_state.step)
        if improved:  # every rank: gathering the carried state is collective
            state = distributed.gather_fit_state(self.parallel, state)
        if self.out_dir is not None:
            append_jsonl(self.out_dir / EVALS_FILE, {
                "step": run.opt_state.step, "epoch": state.epoch, "position": state.position, "val_loss": loss,
                "val_ppl": perplexity(loss), "best": improved})
            if improved:
                previous = run.fit_state
                run.fit_state = state
                try:
                    write_checkpoint(self.out_dir / BEST_DIR, *run_state(run))
                finally:
                    run.fit_state = previous
        if run.selection.patience_spent(run.config.early_stop):
            raise EarlyStop()

    def on_epoch(self, row: dict) -> None:
        config = self.run.config
        self.run.history.append(row)
        self.last_state = FitState(row["epoch"], sampler_rng=self.sampler_rng.bit_generator.state,
                                   spent_s=row["elapsed_s"] or 0.0)
        self.hook.seqkit_epoch_ended(run=self.run, row=row)
        if not config.eval_every and row.get("val_bpc") is not None:
            self.select(row["val_bpc"] * math.log(2), self.last_state)
        main = self.parallel is None or self.parallel.world.is_main
        last = row["epoch"] == config.epochs or row.get("budget_spent")  # the final save and samples follow
        if main and row["epoch"] % config.sample_every == 0 and not last:
            for prefix in self.prefixes:
                self.sample(prefix, row["epoch"])
        every = config.checkpoint_every
        if every and row["epoch"] % every == 0 and not last:
            self.save(self.last_state)

    def on_step(self, state: FitState) -> None:
        self.last_state = state
        self.hook.seqkit_step_ended(run=self.run, state=state)
        every = self.run.config.eval_every
        if every and self.val_ids is not None and self.run.opt_state.step % every == 0:
            from seqkit.engine import evaluate

            config = self.run.config
            result = evaluate(self.run.network, self.run.params, self.val_ids, config.batch_size, config.num_steps)
            self.select(result["loss"], state)
        signum = self.should_stop() if self.should_stop else None
        if signum:
            self.agreed_stop = True
            raise TrainingInterrupted(signum)

    def on_interrupt(self, state: FitState) -> None:
        if self.parallel is not None and not self.agreed_stop:
            self.failure = "this rank stopped at once, apart from the others"  # a save would wait for them
            return
        try:
            self.save(state)
            self.stopped = state
        except CheckpointError as exc:
            self.failure = str(exc)

    def interrupted_message(self, signum: int) -> str:
        return _interrupted_message(signum, self.stopped, self.last_checkpoint, self.out_dir, self.failure)

    def write_plot(self) -> None:
        """``perplexity.png`` beside the metrics when matplotlib is installed and an epoch is done."""
        if self.out_dir is None or not self.run.history or importlib.util.find_spec("matplotlib") is None:
            return
        from seqkit.plot import plot_run

        try:
            plot_run(self.out_dir)
        except SeqkitError:
            pass  # the metrics are written; `seqkit plot` can draw them later and say what went wrong

    def write_summary(self, samples: list[str] | None, error: str | None = None, status: str | None = None) -> None:
        if self.out_dir:
            summary = _summary(self.run, self.info, self.started, samples, error, status, self.last_checkpoint)
            write_json_atomic(self.out_dir / "summary.json", summary)


def _interrupted_message(signum: int, state: FitState | None, folder: Path | None, out_dir: Path | None,
                         failure: str | None) -> str:
    name = signal.Signals(signum).name
    if state is None:
        kept = f"; the last checkpoint ({folder}) is kept" if folder else ""
        why = failure or ("no output folder" if out_dir is None else "stopped during a parameter update")
        return f"{name}: no checkpoint written ({why}){kept}"
    where = f"after epoch {state.epoch}" if not state.position else \
        f"in epoch {state.epoch + 1} after minibatch {state.position}"
    if out_dir is None:
        return f"{name}: stopped {where}; the Run (exception.run) can be saved with run.save(path)"
    return f"{name}: stopped {where}; checkpoint saved in {folder}; continue with: seqkit run --resume {out_dir}"




LOAD_KINDS = ("backend", "cell", "decoder")


def load(path: str | Path, backend: str = "numpy", registry: Registry | None = None, **options: Any) -> Run:
    """The `Run` saved at ``path`` (a run's --out folder or its checkpoint folder), on any backend.

    ``options`` may set the backend's options (``device``, ``dtype``), ``impl``, and the decoder
    with its options; everything else comes from the checkpoint. It predicts, evaluates and saves
    like a trained run; the checkpoint's own backend is not needed."""
    registry = registry or get_registry()
    ckpt = read_checkpoint(path)
    needed = ("cell",) if "decoder" in options else ("cell", "decoder")
    missing = missing_components(registry, ckpt.state, needed)
    if missing:
        raise CheckpointError(f"cannot load {ckpt.folder}: {missing}")
    for key in options:
        if key in CORE_OPTIONS and key not in ("impl", "decoder", "predict_len", "prefix"):
            raise ConfigError(f"--{key.replace('_', '-')} is fixed by the checkpoint; only the backend, --impl and "
                              "the decoder can be chosen when loading")
    base = saved_values(ckpt, registry)
    base.pop("impl", None)
    try:
        config = resolve(registry, {"backend": backend, **options}, base=base, only_kinds=LOAD_KINDS)
    except ConfigError:
        raise
    except CheckpointError:
        raise
    spec = ckpt.model_spec(registry, config)
    backend_obj: Backend = create(registry, config, "backend")
    run = _restored_run(ckpt, config, make_network(backend_obj, spec, config.impl), registry, None)
    return run


def corpus_text(config: RunConfig, registry: Registry | None = None, saved: Mapping[str, Any] | None = None,
                **options: Any) -> tuple[str, str]:
    """The text of a corpus for evaluation and its name: the run's own corpus (read whole, with the
    options in ``saved``, the run's `Run.saved_options`) unless ``options`` name another corpus or
    file; ``max_tokens`` cuts it."""
    registry = registry or get_registry()
    saved = dict(saved or {})
    if options.get("corpus") and options.get("corpus_file"):
        raise ConfigError("pass --corpus or --corpus-file, not both")
    base = {k: v for k, v in {**saved, **config.to_dict()}.items() if k != "max_tokens"}
    if options.get("corpus") or options.get("corpus_file"):
        base.pop("corpus_file", None)
        base.pop("corpus", None)
    chosen = resolve(registry, options, base=base, only_kinds=("corpus",))
    text = create(registry, chosen, "corpus").read()
    if chosen.max_tokens is not None:
        text = detokenize(tokenize(text, chosen.tokens)[:chosen.max_tokens], chosen.tokens)
    return text, chosen.get("corpus_file") if chosen.corpus == "file" else chosen.corpus


def _summary(run: Run, info: dict, started: float, samples: list[str] | None, error: str | None,
             status: str | None = None, checkpoint: Path | None = None) -> dict:
    last = run.history[-1] if run.history else {}
    speeds = [r["tokens_per_s"] for r in run.history if r.get("tokens_per_s")]
    return {
        "seqkit_version": seqkit.__version__,
        "status": status or ("diverged" if error else "completed"),
        "error": error,
        "config": run.config.to_dict(),
        "components": component_origins(run.registry, run.config),
        **{k: info[k] for k in ("backend", "device", "impl", "dtype", "vocab_size", "num_params")},
        "epochs_completed": len(run.history),
        "train_ppl": last.get("train_ppl"),
        "val_ppl": last.get("val_ppl"),
        "val_bpc": last.get("val_bpc"),
        "tokens_per_s": statistics.median(speeds) if speeds else None,
        "wall_time_s": time.perf_counter() - started,
        "sample": samples[0] if samples else None,
        "samples": samples,
        "checkpoint": str(checkpoint) if checkpoint else None,
    }
