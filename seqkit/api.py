"""The Python API: ``seqkit.train(**options)`` returns a `Run`; the CLI is a thin layer over it."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import seqkit
from seqkit.backend import Backend, Params
from seqkit.config import RunConfig
from seqkit.dataset import Dataset, load_dataset
from seqkit.engine import TrainSettings, evaluate, fit, predict
from seqkit.errors import ConfigError, DataError, DivergedError
from seqkit.network import GenericNetwork, ModelSpec, Network
from seqkit.output import append_jsonl, default_out_dir, prepare_out_dir, write_json_atomic
from seqkit.plugins import Registry, get_registry
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

    @property
    def backend(self) -> Backend:
        return self.network.backend

    def prefix_ids(self, prefix: str) -> np.ndarray:
        """Token ids of ``prefix``; tokens outside the vocabulary raise `ConfigError` naming them."""
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
    ) -> str:
        """The prefix followed by ``length`` generated tokens (defaults from the run's config)."""
        config = self.config
        prefix = self.default_prefix if prefix is None else prefix
        length = config.predict_len if length is None else length
        if length < 0:
            raise ConfigError(f"--predict-len must be >= 0, got {length}")
        chooser = self._registry.create(
            "decoder", decoder or config.decoder,
            temperature=config.temperature if temperature is None else temperature,
            alpha=config.alpha if alpha is None else alpha)
        rng = np.random.default_rng(seed_streams(config.seed)["decoder"] if seed is None else seed)
        ids = predict(self.network, self.params, self.prefix_ids(prefix), length, chooser, rng)
        return prefix + ("" if config.tokens == "char" else " ") * bool(ids) + \
            detokenize(self.vocab.decode(ids), config.tokens)

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


def train(progress: Progress | None = None, registry: Registry | None = None, **options: Any) -> Run:
    """Train a model from keyword options (the CLI's, with underscores) and return the `Run`.

    ``progress(event, payload)`` is called with ``("start", info)``, ``("epoch", row)`` and
    ``("sample", text)``. With ``out=DIR`` the folder gets ``metrics.jsonl`` and ``summary.json``."""
    config = RunConfig.from_options(**options)
    registry = registry or get_registry()
    notify = progress or (lambda event, payload: None)

    backend_cls = registry.get("backend", config.backend)
    cell = registry.create("cell", config.cell)
    sampler = registry.create("sampler", config.sampler)
    clipper = registry.create("clipper", config.clipper, clip_theta=config.clip_theta)
    registry.create("decoder", config.decoder, temperature=config.temperature, alpha=config.alpha)
    out_dir = prepare_out_dir(config.out) if config.out else None

    data = load_dataset(config, registry)
    _check_long_enough(config, sampler, data)
    backend: Backend = backend_cls(device=config.device, dtype=config.dtype)
    spec = ModelSpec(cell, len(data.vocab), config.hidden, config.embedding)
    network = make_network(backend, spec, config.impl)
    streams = seed_streams(config.seed)
    params = {k: backend.asarray(v) for k, v in spec.init_params(np.random.default_rng(streams["init"])).items()}
    run = Run(config, data.vocab, network, params, [], out_dir, data.default_prefix, registry)
    prefix = run.default_prefix if config.prefix is None else config.prefix
    run.prefix_ids(prefix)  # fail on unseen prefix tokens before training, not after

    info = {
        "backend": backend.name, "device": backend.device, "impl": network.impl, "dtype": config.dtype,
        "vocab_size": len(data.vocab), "train_tokens": len(data.train_ids), "val_tokens": len(data.val_ids),
        "num_params": int(sum(np.prod(s.shape) for s in spec.param_specs().values())),
        "out": str(out_dir) if out_dir else None,
    }
    notify("start", info)
    metrics_path = out_dir / "metrics.jsonl" if out_dir else None
    if metrics_path:
        metrics_path.write_text("")

    def on_epoch(row: dict) -> None:
        run.history.append(row)
        if metrics_path:
            append_jsonl(metrics_path, row)
        notify("epoch", row)
        if row["epoch"] % config.sample_every == 0 and row["epoch"] != config.epochs:
            notify("sample", run.predict(prefix))

    settings = TrainSettings(
        epochs=config.epochs, batch_size=config.batch_size, num_steps=config.num_steps, lr=config.lr,
        lr_decay=config.lr_decay, lr_decay_every=config.lr_decay_every, detach=not config.no_detach)
    started = time.perf_counter()
    try:
        fit(network, params, data.train_ids, sampler, clipper, settings,
            np.random.default_rng(streams["sampler"]), data.val_ids if len(data.val_ids) else None, on_epoch)
    except DivergedError as exc:
        if out_dir:
            write_json_atomic(out_dir / "summary.json", _summary(run, info, started, None, str(exc)))
            raise DivergedError(f"{exc} (metrics so far are in {out_dir})") from None
        raise
    sample = run.predict(prefix)
    notify("sample", sample)
    if out_dir:
        write_json_atomic(out_dir / "summary.json", _summary(run, info, started, sample, None))
    return run


def _summary(run: Run, info: dict, started: float, sample: str | None, error: str | None) -> dict:
    last = run.history[-1] if run.history else {}
    speeds = [r["tokens_per_s"] for r in run.history if r["tokens_per_s"]]
    return {
        "seqkit_version": seqkit.__version__,
        "status": "diverged" if error else "completed",
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
    }
