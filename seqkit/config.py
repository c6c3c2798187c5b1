"""The engine's own options, and resolving a run's configuration from every source.

A run's options come in layers: declared defaults < the corpus' recommended values < a preset < a
config file < what the user typed (flags or keywords). `resolve` merges them, picks the components, keeps exactly the options
the engine and the selected components declare, and validates each value once, through its
`seqkit.options.Option`. Values from a preset or a config file for a component that is not
selected are ignored; a value given explicitly that no selected component uses is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from seqkit.errors import ConfigError
from seqkit.options import Option, nearest

if TYPE_CHECKING:
    from seqkit.plugins import Registry

# kind -> the core option that selects it, in the order components are listed
KIND_OPTIONS = {
    "backend": "backend", "corpus": "corpus", "sampler": "sampler", "cell": "cell",
    "optimizer": "optimizer", "schedule": "schedule", "clipper": "clipper", "decoder": "decoder",
}

CORE_GROUPS: dict[str, tuple[Option, ...]] = {
    "Components": (
        Option("backend", str, "numpy", "Array framework (see `seqkit plugins`).", resumable=True),
        Option("impl", str, "auto", "scratch = generic autodiff of the cell; fused = the backend's fast path.",
               choices=("auto", "scratch", "fused"), resumable=True),
        Option("corpus", str, "timemachine", "Text source (--corpus-file PATH implies --corpus file)."),
        Option("sampler", str, "sequential", "Minibatch scheme: random or sequential."),
        Option("cell", str, "rnn-tanh", "Recurrent cell."),
        Option("optimizer", str, "sgd", "Update rule: sgd (the lesson) or adam."),
        Option("clipper", str, "norm", "Gradient transform: norm or none."),
        Option("schedule", str, "step", "Learning-rate schedule: step (the lessons' decay), constant or cosine."),
        Option("decoder", str, "greedy", "Next-token picker for samples: greedy, temperature or alpha.",
               resumable=True),
    ),
    "Data": (
        Option("tokens", str, "char", "Tokenise into characters or words.", choices=("char", "word")),
        Option("max_tokens", int, None, "Keep only the first N tokens.", gt=1, nullable=True),
        Option("val_fraction", float, None, "Hold out the last fraction F for validation (default: the corpus').",
               ge=0, lt=1, nullable=True),
    ),
    "Model": (
        Option("hidden", int, 512, "Hidden units.", ge=1),
        Option("embedding", int, 0, "Embedding width (0 = one-hot inputs).", ge=0),
        Option("init", str, "small-normal", "Initial weights: small-normal = the lessons' normal(0, 0.01) and zero "
               "biases; pytorch = uniform(±1/sqrt(hidden)) as nn.RNN and nn.Linear, embedding normal(0, 1).",
               choices=("small-normal", "pytorch")),
        Option("dropout", float, 0.0, "Dropout rate in training, on the cell output before the output layer and on "
               "the embedded inputs (never on the recurrent state).", ge=0, lt=1),
    ),
    "Training": (
        Option("epochs", int, 500, "Epochs to train.", ge=1, resumable=True),
        Option("batch_size", int, 32, "Sequences per minibatch.", ge=1),
        Option("num_steps", int, 35, "Time steps per minibatch (the truncation length of BPTT).", ge=1),
        Option("lr", float, 1.0, "Learning rate.", gt=0),
        Option("no_detach", bool, False, "Let gradients flow across the minibatches of an epoch."),
        Option("seed", int, 0, "Seed of parameter init, sampling and decoding.", ge=0),
        Option("eval_every", int, 0, "Evaluate the held-out text every N minibatches (0 = at each epoch's end); "
               "the best model is kept in OUT/checkpoint-best.", ge=0),
        Option("time_budget", float, None, "Train for this many minutes of wall time (evaluations included); the "
               "schedule spreads over it and --epochs becomes an upper bound.", gt=0, nullable=True,
               resumable=True),
        Option("early_stop", int, 0, "Stop after N evaluations without a better validation loss (0 = never).",
               ge=0, resumable=True),
    ),
    "Output": (
        Option("prefix", str, None, "Sample prefix; repeat for several (default: the corpus').",
               multiple=True, nullable=True, resumable=True, nonempty=True,
               hint="generation warms up over at least one token"),
        Option("predict_len", int, 50, "Tokens per sample (at most 1,000,000: generate longer texts in parts).",
               ge=0, le=1_000_000, resumable=True),
        Option("sample_every", int, 50, "Print samples every N epochs.", ge=1, resumable=True),
        Option("log_every", int, 10, "Print a line every N epochs.", ge=1, resumable=True),
        Option("checkpoint_every", int, 10, "Save a checkpoint every N epochs (0 = only at the end and when "
               "interrupted).", ge=0, resumable=True),
        Option("out", str, None, "Output folder (default: a new folder under runs/).", nullable=True, path=True,
               resumable=True, portable=False),
        Option("logger", str, None, "Run watchers to add, e.g. tensorboard; repeat for several (see "
               "`seqkit plugins`).", multiple=True, nullable=True, resumable=True),
    ),
}
CORE_OPTIONS: dict[str, Option] = {opt.name: opt for group in CORE_GROUPS.values() for opt in group}


@dataclass
class RunConfig:
    """A resolved configuration: every option the engine and the selected components use.

    Read values as attributes (``config.hidden``, ``config.clip_theta``) or with ``config[name]``.
    ``owners`` maps each component option to the ``(kind, component)`` pairs that declared it."""

    values: dict[str, Any]
    owners: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"the run configuration has no option {name!r}")

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def to_dict(self) -> dict[str, Any]:
        """Every resolved value, core options first, then each component's, JSON-ready."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.values.items()}

    def component_options(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The keyword arguments the selected component of ``kind`` (or the one called ``name``,
        for loggers) is constructed with."""
        name = name or self.values[KIND_OPTIONS[kind]]
        return {opt: self.values[opt] for opt, owners in self.owners.items() if (kind, name) in owners}


def selected(registry: "Registry", values: Mapping[str, Any],
             only_kinds: tuple[str, ...] | None = None) -> dict[str, str]:
    """The component name of each kind these values select (the core default where unset);
    only the names of ``only_kinds`` (default: all) are checked against the registry."""
    chosen = {kind: values.get(opt) or CORE_OPTIONS[opt].default for kind, opt in KIND_OPTIONS.items()}
    if values.get("corpus_file") and not values.get("corpus"):
        chosen["corpus"] = "file"
    for kind, name in chosen.items():
        CORE_OPTIONS[KIND_OPTIONS[kind]].validate(name)
        if only_kinds is None or kind in only_kinds:
            registry.component(kind, name)  # unknown names list the valid ones
    return chosen


def corpus_default_options(registry: "Registry", corpus: str) -> dict[str, Any]:
    """The option values a corpus recommends (its ``default_options``): a run on it with no other
    flag trains in minutes to a model that writes recognisable text."""
    factory = registry.component("corpus", corpus).factory
    defaults = dict(getattr(factory, "default_options", None) or {})
    defaults.pop("corpus", None)
    return defaults


def resolve(registry: "Registry", explicit: Mapping[str, Any] | None = None,
            base: Mapping[str, Any] | None = None, only_kinds: tuple[str, ...] | None = None,
            corpus_defaults: bool = True) -> RunConfig:
    """Merge ``base`` (preset, config file or checkpoint values; ignored where unused) with
    ``explicit`` (flags or keywords; an error where unused) over the declared defaults and (unless
    ``corpus_defaults`` is false, as for a preset, which is a complete recipe) the selected
    corpus' recommended values.

    ``only_kinds`` limits the components whose options are accepted (``generate`` takes a backend
    and a decoder). Every value is validated by its declaration; unknown names name the nearest."""
    explicit = {k: v for k, v in (explicit or {}).items()}
    base = dict(base or {})
    schema = registry.option_schema()
    known = set(CORE_OPTIONS) | set(schema)
    for source, values in (("option", explicit), ("key", base)):
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown {source} {key!r}{nearest(key, known)}; see `seqkit run --help`")
    merged = {**base, **explicit}
    if "corpus_file" in explicit and "corpus" not in explicit:
        merged["corpus"] = "file"
    chosen = selected(registry, merged, only_kinds)
    recommended = corpus_default_options(registry, chosen["corpus"]) \
        if corpus_defaults and chosen["corpus"] in registry.names("corpus") else {}
    if recommended:
        merged = {**recommended, **merged}
        chosen = selected(registry, merged, only_kinds)
    kinds = only_kinds or tuple(KIND_OPTIONS)
    owners: dict[str, list[tuple[str, str]]] = {}
    declared: dict[str, Option] = {}
    for kind in kinds:
        for opt in registry.component(kind, chosen[kind]).options:
            owners.setdefault(opt.name, []).append((kind, chosen[kind]))
            declared.setdefault(opt.name, opt)
    loggers = CORE_OPTIONS["logger"].validate(merged.get("logger")) if only_kinds is None else None
    for name in loggers or []:
        for opt in registry.component("logger", name).options:
            owners.setdefault(opt.name, []).append(("logger", name))
            declared.setdefault(opt.name, opt)
    for key in explicit:
        if key not in CORE_OPTIONS and key not in declared:
            raise ConfigError(_unused_message(registry, key, chosen, kinds))
    values: dict[str, Any] = {}
    for name, opt in CORE_OPTIONS.items():
        values[name] = opt.validate(merged.get(name, opt.default))
    values.update({KIND_OPTIONS[kind]: chosen[kind] for kind in KIND_OPTIONS})
    for name, opt in declared.items():
        for kind, comp in owners[name]:
            own = next(o for o in registry.component(kind, comp).options if o.name == name)
            values[name] = own.validate(merged.get(name, own.default))
    return RunConfig(values, owners)


def _unused_message(registry: "Registry", key: str, chosen: dict[str, str], kinds: tuple[str, ...]) -> str:
    users = [(kind, comp) for kind, comp in registry.option_users(key)]
    flag = "--" + key.replace("_", "-")
    if not users:
        return f"{flag} is not an option of this command"
    named = ", ".join(f"{kind} {comp!r}" for kind, comp in users)
    if all(kind == "logger" for kind, _ in users):
        return f"{flag} is used by {named}: add --logger {users[0][1]} or leave {flag} out"
    relevant = [kind for kind, _ in users if kind in kinds]
    if not relevant:
        return f"{flag} belongs to {named}, which this command does not use"
    kind = relevant[0]
    example = next(comp for k, comp in users if k == kind)
    return (f"{flag} is used by {named}, not by the selected {kind} {chosen[kind]!r}: add "
            f"--{KIND_OPTIONS[kind]} {example} or leave {flag} out")
