"""The Python API: ``seqkit.train(**options)`` returns a `Run`; the CLI is a thin layer over it."""

from __future__ import annotations

import dataclasses
import json
import signal
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import seqkit
from seqkit.backend import Backend, Params
from seqkit.checkpoint import (
    Checkpoint, CheckpointError, TrainingInterrupted, check_resume_data, dataset_fingerprint,
    generator_from_state, read_checkpoint, resume_options, save_run,
)
from seqkit.config import RunConfig
from seqkit.dataset import Dataset, corpus_options, load_dataset
from seqkit.engine import FitState, TrainSettings, evaluate, fit, predict
from seqkit.errors import ConfigError, DataError, DivergedError
from seqkit.limits import check_predict_len, check_prefix
from seqkit.network import GenericNetwork, ModelSpec, Network
from seqkit.optimizer import OptimizerState
from seqkit.output import append_jsonl, prepare_out_dir, write_json_atomic
from seqkit.plugins import Registry, get_registry
from seqkit.resources import check_memory
from seqkit.runlock import holds_run_locks
from seqkit.vocab import Vocab, detokenize, tokenize

Progress = Callable[[str, Any], None]


def make_network(backend: Backend, spec: ModelSpec, impl: str) -> Network:
    """The fused network when asked for (or ``auto`` and available), else the generic one."""
    if impl == "scratch":
        return GenericNetwork(backend, spec)
    fused = backend.fused_network(spec)
    if fused is None and impl == "fused":
        known = ", ".join(backend.fused_cells()) or "none"
        raise ConfigError(
            f"backend {backend.name!r} has no fused implementation of cell {spec.cell.name!r} "
            f"(fused cells: {known}); use --impl scratch")
    return fused or GenericNetwork(backend, spec)


def seed_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """Independent seed sequences for parameter init, the sampler and the decoder."""
    init, sampler, decoder = np.random.SeedSequence(seed).spawn(3)
    return {"init": init, "sampler": sampler, "decoder": decoder}


class Run:
    """A trained model with its vocabulary, configuration and per-epoch metrics (``history``)."""

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
        self._registry = registry or get_registry()
        self.fit_state: FitState | None = None  # where training stands (for checkpoints)
        self.opt_state = OptimizerState()  # the optimizer's slots and update count
        self.rng_states: dict[str, dict] = {}  # saved NumPy generator states: "init", "decoder"
        self.data_info: dict | None = None  # token counts and hash of the training text

    @property
    def backend(self) -> Backend:
        return self.network.backend

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

    def predict(
        self, prefix: str | None = None, length: int | None = None, decoder: str | None = None,
        temperature: float | None = None, alpha: float | None = None, seed: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> str:
        """The prefix followed by ``length`` generated tokens (defaults from the run's config).

        Random decoders draw from ``rng``, else from a generator seeded with ``seed``, else from a
        fresh copy of the run's decoder stream."""
        config = self.config
        prefix = self.default_prefix if prefix is None else prefix
        length = config.predict_len if length is None else length
        check_predict_len(length)
        chooser = self._registry.create(
            "decoder", decoder or config.decoder,
            temperature=config.temperature if temperature is None else temperature,
            alpha=config.alpha if alpha is None else alpha)
        if rng is None:
            rng = self.decoder_rng() if seed is None else np.random.default_rng(seed)
        ids = predict(self.network, self.params, self.prefix_ids(prefix), length, chooser, rng)
        generated = detokenize(self.vocab.decode(ids), config.tokens)
        separator = " " if config.tokens == "word" and generated else ""
        return prefix + separator + generated

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
        result = evaluate(self.network, self.params, ids, self.config.batch_size, self.config.num_steps)
        unknown_set = set(unknown)
        result["unknown_tokens"] = sum(t in unknown_set for t in tokens)
        result["unknown_policy"] = "counted as <unk>" if unknown else "none"
        return result


def _check_long_enough(config: RunConfig, sampler, data: Dataset) -> None:
    if sampler.min_batches(len(data.train_ids), config.batch_size, config.num_steps) < 1:
        raise ConfigError(
            f"--num-steps {config.num_steps} with --batch-size {config.batch_size} needs more than "
            f"{len(data.train_ids)} training tokens for one minibatch; lower --num-steps or --batch-size")


@holds_run_locks
def train(
    progress: Progress | None = None, registry: Registry | None = None, resume: str | Path | None = None,
    should_stop: Callable[[], int | None] | None = None, **options: Any,
) -> Run:
    """Train a model from keyword options (the CLI's, with underscores) and return the `Run`.

    ``progress(event, payload)`` is called with ``("start", info)``, ``("epoch", row)``,
    ``("sample", text)`` and ``("checkpoint", folder)``. With ``out=DIR`` the folder gets
    ``metrics.jsonl``, ``summary.json`` and ``checkpoint/`` (every ``checkpoint_every`` epochs, at
    the end and when interrupted). ``resume=DIR`` continues the run checkpointed there; ``options``
    then holds only what to change (`seqkit.checkpoint.RESUMABLE`). ``should_stop()`` is polled
    after every minibatch: a signal number stops training with a checkpoint and raises
    `TrainingInterrupted` (as does Ctrl-C)."""
    registry = registry or get_registry()
    ckpt = read_checkpoint(resume) if resume is not None else None
    if ckpt is not None:
        options = resume_options(ckpt, options)
    config = RunConfig.from_options(**options)
    if ckpt is not None:
        ckpt.model_spec(registry, config)  # the checkpoint is consistent in itself
    notify = progress or (lambda event, payload: None)

    backend_cls = registry.get("backend", config.backend)
    cell = registry.create("cell", config.cell)
    sampler = registry.create("sampler", config.sampler, random_offset=config.random_offset)
    clipper = registry.create("clipper", config.clipper, clip_theta=config.clip_theta)
    optimizer = registry.create("optimizer", config.optimizer, beta1=config.beta1, beta2=config.beta2, eps=config.eps)
    registry.create("decoder", config.decoder, temperature=config.temperature, alpha=config.alpha)
    out_dir = prepare_out_dir(config.out) if config.out else None

    data = load_dataset(config, registry)
    _check_long_enough(config, sampler, data)
    fingerprint = dataset_fingerprint(data.train_ids, data.val_ids, data.val_fraction)
    if ckpt is not None:
        check_resume_data(ckpt, data.vocab, fingerprint)
    backend: Backend = backend_cls(device=config.device, dtype=config.dtype)
    spec = ModelSpec(cell, len(data.vocab), config.hidden, config.embedding)
    check_memory(config, spec, backend, optimizer, sampler, len(data.train_ids))
    network = make_network(backend, spec, config.impl)
    streams = seed_streams(config.seed)
    if ckpt is None:
        init_rng = np.random.default_rng(streams["init"])
        params = {k: backend.asarray(v) for k, v in spec.init_params(init_rng).items()}
        run = Run(config, data.vocab, network, params, [], out_dir, data.default_prefix, registry)
        run.rng_states = {"init": init_rng.bit_generator.state,
                          "decoder": np.random.default_rng(streams["decoder"]).bit_generator.state}
        run.opt_state = optimizer.init_state(backend, params)
    else:
        ckpt.check_model(spec, config.batch_size)
        run = _from_checkpoint(ckpt, config, network, registry, out_dir)
    run.data_info = fingerprint
    prefix = run.default_prefix if config.prefix is None else config.prefix
    run.prefix_ids(prefix)  # fail on unseen prefix tokens before training, not after

    info = {
        "backend": backend.name, "device": backend.device, "impl": network.impl, "dtype": config.dtype,
        "vocab_size": len(data.vocab), "train_tokens": len(data.train_ids), "val_tokens": len(data.val_ids),
        "num_params": int(sum(np.prod(s.shape) for s in spec.param_specs().values())),
        "out": str(out_dir) if out_dir else None, "epochs": config.epochs,
        "resumed": {"from": str(ckpt.folder), "epoch": ckpt.epoch, "position": ckpt.position} if ckpt else None,
    }
    notify("start", info)
    sampler_rng = np.random.default_rng(streams["sampler"])
    recorder = _Recorder(run, info, notify, prefix, sampler_rng, should_stop)
    settings = TrainSettings(
        epochs=config.epochs, batch_size=config.batch_size, num_steps=config.num_steps, lr=config.lr,
        lr_decay=config.lr_decay, lr_decay_every=config.lr_decay_every, detach=not config.no_detach)
    try:
        fit(network, run.params, data.train_ids, sampler, clipper, settings, sampler_rng,
            data.val_ids if len(data.val_ids) else None, recorder.on_epoch,
            resume=run.fit_state, on_step=recorder.on_step, on_interrupt=recorder.on_interrupt,
            optimizer=optimizer, opt_state=run.opt_state)
    except DivergedError as exc:
        recorder.write_summary(None, error=str(exc))
        if out_dir:
            raise DivergedError(f"{exc} (metrics so far are in {out_dir})") from None
        raise
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        recorder.write_summary(None, status="interrupted")
        raise TrainingInterrupted(signum, recorder.interrupted_message(signum), recorder.stopped_checkpoint,
                                  run) from None
    recorder.save(FitState(config.epochs, sampler_rng=sampler_rng.bit_generator.state))
    sample = run.predict(prefix)
    notify("sample", sample)
    recorder.write_summary(sample)
    return run


class _Recorder:
    """A training run's side effects: metrics.jsonl, samples, checkpoints, summary.json, stop requests."""

    def __init__(self, run: Run, info: dict, notify: Progress, prefix: str, sampler_rng: np.random.Generator,
                 should_stop: Callable[[], int | None] | None) -> None:
        self.run, self.info, self.notify, self.prefix = run, info, notify, prefix
        self.sampler_rng = sampler_rng
        self.should_stop = should_stop
        self.out_dir = run.out_dir
        self.saved: list[Path] = []
        self.stopped: FitState | None = None
        self.failure: str | None = None
        self.started = time.perf_counter()
        self.metrics_path = self.out_dir / "metrics.jsonl" if self.out_dir else None
        if self.metrics_path:
            self.metrics_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in run.history))

    @property
    def last_checkpoint(self) -> Path | None:
        return self.saved[-1] if self.saved else None

    @property
    def stopped_checkpoint(self) -> Path | None:
        """The checkpoint written for the interruption itself, if any."""
        return self.last_checkpoint if self.stopped else None

    def save(self, state: FitState) -> None:
        self.run.fit_state = state
        if self.out_dir:
            self.saved.append(self.run.save(self.out_dir))
            self.notify("checkpoint", str(self.saved[-1]))

    def on_epoch(self, row: dict) -> None:
        config = self.run.config
        self.run.history.append(row)
        if self.metrics_path:
            append_jsonl(self.metrics_path, row)
        self.notify("epoch", row)
        if row["epoch"] % config.sample_every == 0 and row["epoch"] != config.epochs:
            self.notify("sample", self.run.predict(self.prefix))
        every = config.checkpoint_every
        if every and row["epoch"] % every == 0 and row["epoch"] != config.epochs:
            self.save(FitState(row["epoch"], sampler_rng=self.sampler_rng.bit_generator.state))

    def on_step(self, state: FitState) -> None:
        signum = self.should_stop() if self.should_stop else None
        if signum:
            raise TrainingInterrupted(signum)

    def on_interrupt(self, state: FitState) -> None:
        try:
            self.save(state)
            self.stopped = state
        except CheckpointError as exc:
            self.failure = str(exc)

    def interrupted_message(self, signum: int) -> str:
        return _interrupted_message(signum, self.stopped, self.last_checkpoint, self.out_dir, self.failure)

    def write_summary(self, sample: str | None, error: str | None = None, status: str | None = None) -> None:
        if self.out_dir:
            summary = _summary(self.run, self.info, self.started, sample, error, status, self.last_checkpoint)
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


def _from_checkpoint(ckpt: Checkpoint, config: RunConfig, network: Network, registry: Registry,
                     out_dir: Path | None) -> Run:
    backend = network.backend
    params = {k: backend.asarray(v) for k, v in sorted(ckpt.params.items())}  # init order: sums follow it
    run = Run(config, Vocab.from_list(ckpt.vocab), network, params, [dict(r) for r in ckpt.metrics], out_dir,
              ckpt.state["default_prefix"], registry)
    run.fit_state = ckpt.fit_state(backend.asarray)
    run.opt_state = ckpt.optimizer_state(backend.asarray)
    run.rng_states = ckpt.rng_states
    run.data_info = ckpt.state.get("data")
    return run


def load(path: str | Path, backend: str = "numpy", device: str = "auto", impl: str = "auto",
         registry: Registry | None = None) -> Run:
    """The `Run` saved at ``path`` (a run's --out folder or its checkpoint folder), on any backend.

    It predicts, evaluates and saves like a trained run; the checkpoint's own backend is not needed."""
    registry = registry or get_registry()
    ckpt = read_checkpoint(path)
    config = ckpt.run_config(backend=backend, device=device, impl=impl, out=None)
    spec = ckpt.model_spec(registry, config)
    backend_obj: Backend = registry.get("backend", backend)(device=device, dtype=config.dtype)
    return _from_checkpoint(ckpt, config, make_network(backend_obj, spec, impl), registry, None)


def corpus_text(
    config: RunConfig, registry: Registry | None = None, corpus: str | None = None,
    corpus_file: str | None = None, data_dir: str | None = None, encoding: str | None = None,
    max_tokens: int | None = None,
) -> tuple[str, str]:
    """Text to evaluate on and its name: ``corpus`` or ``corpus_file`` read with the config's
    normalisation and tokenisation (default: the config's own corpus), cut to ``max_tokens``."""
    if corpus and corpus_file:
        raise ConfigError("pass --corpus or --corpus-file, not both")
    if max_tokens is not None and max_tokens < 2:
        raise ConfigError(f"--max-tokens must be an integer > 1, got {max_tokens}")
    changes: dict[str, Any] = {"data_dir": data_dir or config.data_dir, "encoding": encoding or config.encoding}
    if corpus_file:
        changes.update(corpus="file", corpus_file=corpus_file)
    elif corpus:
        changes.update(corpus=corpus, corpus_file=None)
    chosen = dataclasses.replace(config, **changes)
    text = (registry or get_registry()).create("corpus", chosen.corpus).read(corpus_options(chosen))
    if max_tokens is not None:
        text = detokenize(tokenize(text, chosen.tokens)[:max_tokens], chosen.tokens)
    return text, chosen.corpus_file if chosen.corpus == "file" else chosen.corpus


def _summary(run: Run, info: dict, started: float, sample: str | None, error: str | None,
             status: str | None = None, checkpoint: Path | None = None) -> dict:
    last = run.history[-1] if run.history else {}
    speeds = [r["tokens_per_s"] for r in run.history if r.get("tokens_per_s")]
    return {
        "seqkit_version": seqkit.__version__,
        "status": status or ("diverged" if error else "completed"),
        "error": error,
        "config": run.config.to_dict(),
        **{k: info[k] for k in ("backend", "device", "impl", "dtype", "vocab_size", "num_params")},
        "epochs_completed": len(run.history),
        "train_ppl": last.get("train_ppl"),
        "val_ppl": last.get("val_ppl"),
        "val_bpc": last.get("val_bpc"),
        "tokens_per_s": statistics.median(speeds) if speeds else None,
        "wall_time_s": time.perf_counter() - started,
        "sample": sample,
        "checkpoint": str(checkpoint) if checkpoint else None,
    }
