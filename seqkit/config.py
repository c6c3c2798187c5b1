"""Run configuration: one plain dataclass of values, validated before any work starts."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from seqkit.errors import ConfigError
from seqkit.limits import check_config, check_option_types

IMPLS = ("auto", "scratch", "fused")
DTYPES = ("float32", "float64")
NORMALIZE = ("default", "none")
TOKENS = ("char", "word")


@dataclass
class RunConfig:
    """Every option of ``seqkit run`` (CLI flags with dashes, API keywords with underscores).

    ``None`` for ``val_fraction``, ``prefix`` and ``out`` means: the corpus' default, the corpus'
    default prefix, and no output folder (the CLI picks ``runs/<time>-<corpus>-<backend>``)."""

    backend: str = "numpy"
    device: str = "auto"
    dtype: str = "float32"
    impl: str = "auto"
    corpus: str = "timemachine"
    corpus_file: str | None = None
    data_dir: str | None = None
    encoding: str = "utf-8"
    normalize: str = "default"
    tokens: str = "char"
    max_tokens: int | None = None
    val_fraction: float | None = None
    sampler: str = "sequential"
    random_offset: bool = True
    no_detach: bool = False
    cell: str = "rnn-tanh"
    hidden: int = 512
    embedding: int = 0
    clipper: str = "norm"
    clip_theta: float = 1.0
    decoder: str = "greedy"
    temperature: float = 1.0
    alpha: float = 1.0
    epochs: int = 500
    batch_size: int = 32
    num_steps: int = 35
    optimizer: str = "sgd"
    lr: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    lr_decay: float = 1.0
    lr_decay_every: int = 100
    seed: int = 0
    prefix: str | None = None
    predict_len: int = 50
    sample_every: int = 50
    log_every: int = 10
    checkpoint_every: int = 10
    out: str | None = None

    @classmethod
    def from_options(cls, **options: Any) -> "RunConfig":
        """Build from keyword options, rejecting unknown names with a suggestion."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown option {key!r}{hint}; valid options: {', '.join(names)}")
        config = cls(**options)
        if config.corpus_file is not None:
            config.corpus = "file"
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise `ConfigError` for the first invalid value, naming the flag and what is allowed."""
        check_option_types(self)  # seqkit.limits: no list or dict where a string or number belongs
        positive_ints = ("hidden", "batch_size", "num_steps", "epochs", "sample_every", "log_every")
        for name in positive_ints:
            _require(getattr(self, name), name, lambda v: isinstance(v, int) and v > 0, "a positive integer")
        _require(self.embedding, "embedding", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0 = one-hot)")
        _require(self.predict_len, "predict_len", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")
        _require(self.checkpoint_every, "checkpoint_every", lambda v: isinstance(v, int) and v >= 0,
                 "an integer >= 0 (0 = only at the end and when interrupted)")
        _require(self.lr_decay_every, "lr_decay_every", lambda v: isinstance(v, int) and v >= 0,
                 "an integer >= 0 (0 = no decay)")
        _require(self.seed, "seed", lambda v: v >= 0, "an integer >= 0")
        _require(self.lr, "lr", lambda v: v > 0, "> 0")
        _require(self.lr_decay, "lr_decay", lambda v: v > 0, "> 0")
        _require(self.beta1, "beta1", lambda v: 0 <= v < 1, "in [0, 1)")
        _require(self.beta2, "beta2", lambda v: 0 <= v < 1, "in [0, 1)")
        _require(self.eps, "eps", lambda v: v > 0, "> 0")
        _require(self.clip_theta, "clip_theta", lambda v: v > 0, "> 0 (use --clipper none to disable clipping)")
        _require(self.temperature, "temperature", lambda v: v >= 0, ">= 0 (0 means greedy)")
        _require(self.alpha, "alpha", lambda v: v > 0, "> 0")
        if self.max_tokens is not None:
            _require(self.max_tokens, "max_tokens", lambda v: isinstance(v, int) and v > 1, "an integer > 1")
        if self.val_fraction is not None:
            _require(self.val_fraction, "val_fraction", lambda v: 0 <= v < 1, "in [0, 1)")
        for name, choices in (("impl", IMPLS), ("dtype", DTYPES), ("normalize", NORMALIZE), ("tokens", TOKENS)):
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"unknown --{name.replace('_', '-')} {value!r}; choose one of: {', '.join(choices)}")
        if self.prefix is not None and not self.prefix:
            raise ConfigError("--prefix must not be empty: generation warms up over at least one token")
        check_config(self)  # upper bounds: seqkit.limits


def _require(value: Any, name: str, ok, what: str) -> None:
    try:
        valid = ok(value)
    except TypeError:
        valid = False
    if not valid:
        raise ConfigError(f"--{name.replace('_', '-')} must be {what}, got {value!r}")
