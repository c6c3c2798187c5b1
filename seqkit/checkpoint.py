"""Portable checkpoints: ``model.safetensors`` (named arrays) and ``state.json`` (everything else).

``state.json`` holds the format marker and version, the vocabulary, every resolved option (the
components' included, and which plugin provided each component), the training position, every
RNG state and the metrics so far. Its layout is declared once, in `STATE_SCHEMA`: `run_state`
builds it and `read_checkpoint` checks it against that table. The arrays are the parameters,
``state.N`` for a carried hidden state and ``opt.<slot>.<param>`` for optimizer slots. Nothing is
pickled and loading runs no code; the folder is written by `seqkit.store`. See docs/checkpoints.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

import seqkit
from seqkit.engine import FitState
from seqkit.running import RunningSums
from seqkit.limits import MAX_STATE_BYTES, check_safetensors_header, model_read_limit, read_bounded
from seqkit.network import ModelSpec
from seqkit.optimizer import OptimizerState
from seqkit.runlock import guard_run_dir
from seqkit.store import (
    FORMAT, FORMAT_VERSION, MODEL_FILE, STATE_FILE, CheckpointError, checkpoint_target, locate,
    run_dir_of, write_checkpoint,
)

if TYPE_CHECKING:
    from seqkit.api import Run

STATE_PREFIX = "state."
OPT_PREFIX = "opt."
BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")

def generator_from_state(state: dict) -> np.random.Generator:
    """A NumPy generator continuing from a saved ``bit_generator.state`` (validated, no code run)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}")
    generator = np.random.Generator(getattr(np.random, name)())
    generator.bit_generator.state = state
    return generator


def dataset_fingerprint(train_ids: np.ndarray, val_ids: np.ndarray, val_fraction: float) -> dict:
    """Token counts and a SHA-256 of the token ids: resuming checks the text is the same."""
    digest = hashlib.sha256(np.asarray(train_ids, dtype="<i8").tobytes())
    digest.update(np.asarray(val_ids, dtype="<i8").tobytes())
    return {"train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids)),
            "val_fraction": val_fraction, "sha256": digest.hexdigest()}


def run_state(run: "Run") -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the state.json content of a `Run` (its ``fit_state`` says where training is)."""
    config, backend = run.config, run.backend
    progress = run.fit_state or FitState(epoch=len(run.history))
    if progress.epoch != len(run.history):
        raise CheckpointError(f"internal error: {len(run.history)} metrics rows for {progress.epoch} epochs")
    dtype = np.dtype(backend.dtype)
    arrays = {}
    for name, value in sorted(run.params.items()):
        if name.startswith((STATE_PREFIX, OPT_PREFIX)):
            raise CheckpointError(f"parameter name {name!r} clashes with the checkpoint's {STATE_PREFIX}N / "
                                  f"{OPT_PREFIX}<slot>.<param> arrays")
        arrays[name] = np.asarray(backend.to_numpy(value), dtype=dtype)
    for slot, values in sorted(run.opt_state.slots.items()):
        for name, value in sorted(values.items()):
            arrays[f"{OPT_PREFIX}{slot}.{name}"] = np.asarray(backend.to_numpy(value), dtype=dtype)
    carried = None
    if progress.position and progress.carried is not None:
        carried = [f"{STATE_PREFIX}{i}" for i in range(len(progress.carried))]
        for key, value in zip(carried, progress.carried):
            arrays[key] = np.asarray(backend.to_numpy(value), dtype=dtype)
    spec = run.network.spec
    registry = run.registry
    next_epoch = progress.epoch + 1
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seqkit_version": seqkit.__version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "cell": spec.cell.name, "vocab_size": spec.vocab_size, "hidden_size": spec.hidden_size,
            "embedding_dim": spec.embedding_dim, "dtype": backend.dtype,
            "trained_on": {"backend": backend.name, "device": backend.device, "impl": run.network.impl},
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        },
        "vocab": list(run.vocab.idx_to_token),
        "default_prefix": run.default_prefix,
        "config": run.config.to_dict(),
        "components": component_origins(registry, run.config),
        "data": run.data_info,
        "training": {
            "epoch": progress.epoch,
            "position": progress.position,
            "spent_s": progress.spent_s,
            "complete": progress.epoch >= config.epochs and not progress.position,
            "lr": {"next_epoch": next_epoch, "base": config.lr, "schedule": config.get("schedule"),
                   "updates_done": run.opt_state.step},
            "carried_state": carried,
            "optimizer": {"name": config.optimizer, "step": run.opt_state.step,
                          "slots": sorted(run.opt_state.slots)},
            "partial": None if not progress.position else {
                "loss_sum": progress.loss_sum, "norm_sum": progress.norm_sum, "tokens": progress.tokens,
                "clipped": progress.clipped, "train_time": progress.train_time},
        },
        "rng": {"init": run.rng_states.get("init"), "sampler": progress.sampler_rng,
                "decoder": run.rng_states.get("decoder")},
        "metrics": run.history,
        "selection": run.selection.as_dict(),
    }
    return arrays, state


def component_origins(registry: Any, config: Any) -> dict[str, dict]:
    """For each component kind: the selected name, the plugin that provided it and its distribution."""
    from seqkit.config import KIND_OPTIONS

    origins = {}
    for kind, option in KIND_OPTIONS.items():
        name = config.get(option)
        try:
            component = registry.component(kind, name)
        except seqkit.SeqkitError:
            origins[kind] = {"name": name, "plugin": None, "distribution": None}
            continue
        origins[kind] = {"name": name, "plugin": component.plugin, "distribution": component.dist}
    return origins


def missing_components(registry: Any, state: dict, kinds: tuple[str, ...]) -> str | None:
    """Why the components a checkpoint needs (of ``kinds``) are not installed, or None."""
    from seqkit.config import KIND_OPTIONS

    origins = state.get("components") or {}
    notes = []
    for kind in kinds:
        name = state["config"].get(KIND_OPTIONS[kind])
        if name is None or name in registry.names(kind):
            continue
        origin = origins.get(kind) or {}
        plugin, dist = origin.get("plugin"), origin.get("distribution")
        source = f"plugin {plugin!r}" + (f" (pip install {dist})" if dist else "") if plugin else "a plugin"
        notes.append(f"{kind} {name!r} from {source}")
    if not notes:
        return None
    return f"this checkpoint needs {', '.join(notes)}, which {'is' if len(notes) == 1 else 'are'} not installed here"


def save_run(run: "Run", path: str | os.PathLike) -> Path:
    """Checkpoint ``run`` into `checkpoint_target` (``path``); returns the checkpoint folder."""
    arrays, state = run_state(run)
    target = checkpoint_target(path)
    with guard_run_dir(run_dir_of(target)):  # refuses while another process's run writes there
        return write_checkpoint(target, arrays, state)


def _header(data: bytes) -> dict:
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size])


def _foreign_model_note(file: Path) -> str | None:
    """Why ``file`` is not a seqkit safetensors file, or None when it looks like one."""
    from safetensors.numpy import load

    try:
        data = read_bounded(file, model_read_limit(None), CheckpointError)
        check_safetensors_header(data, file, CheckpointError)
        names = sorted(load(data))
        if _header(data).get("__metadata__", {}).get("format") == FORMAT:
            return None
    except Exception:  # unreadable: reported as damaged elsewhere
        return None
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{file} was not written by seqkit (no seqkit format marker; tensors: {shown or 'none'})"


# The layout of state.json: dotted key, accepted JSON types, what it holds. `run_state` writes
# exactly these keys; `_read_state` checks each one before anything else reads the file.
STATE_SCHEMA: tuple[tuple[str, tuple, str], ...] = (
    ("vocab", (list,), "a list of tokens"),
    ("config", (dict,), "an object: every resolved option"),
    ("default_prefix", (str,), "a string"),
    ("model.sha256", (str,), "a hex string"),
    ("model.arrays", (dict,), "an object"),
    ("training.epoch", (int,), "an integer >= 0"),
    ("training.position", (int,), "an integer >= 0"),
    ("training.carried_state", (list, type(None)), "a list of array names or null"),
    ("training.optimizer.step", (int,), "an integer >= 0"),
    ("training.optimizer.slots", (list,), "a list of slot names"),
    ("metrics", (list,), "a list of rows"),
    ("rng.init", (dict, type(None)), "an object or null"),
    ("rng.sampler", (dict, type(None)), "an object or null"),
    ("rng.decoder", (dict, type(None)), "an object or null"),
)


def _get(state: dict, dotted: str, kinds: tuple, what: str, file: Path) -> Any:
    value: Any = state
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise CheckpointError(f"{file} is malformed: {dotted} is missing")
        value = value[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise CheckpointError(f"{file} is malformed: {dotted} should be {what}")
    return value


def _read_state(folder: Path) -> dict:
    file = folder / STATE_FILE
    if not file.exists():
        model = folder / MODEL_FILE
        note = _foreign_model_note(model) if model.is_file() else None
        if note:
            raise CheckpointError(f"{note} and there is no {STATE_FILE}: not a seqkit checkpoint")
        raise CheckpointError(f"{file} is missing: the checkpoint in {folder} is incomplete")
    try:
        state = json.loads(read_bounded(file, MAX_STATE_BYTES, CheckpointError, STATE_FILE).decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                              "the file is damaged") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    except (ValueError, RecursionError) as exc:  # numbers past Python's digit limit, nesting past the stack
        raise CheckpointError(f"{file} is not a checkpoint's JSON ({type(exc).__name__}: {exc}): "
                              "the file is damaged") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{file} was not written by seqkit (it lacks \"format\": \"{FORMAT}\"): "
                              "not a seqkit checkpoint")
    version = state.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        hint = ": upgrade seqkit" if isinstance(version, int) and version > FORMAT_VERSION else ""
        raise CheckpointError(f"{file} has checkpoint format version {version!r}; seqkit {seqkit.__version__} "
                              f"reads version {FORMAT_VERSION}{hint}")
    values = {key: _get(state, key, kinds, what, file) for key, kinds, what in STATE_SCHEMA}
    vocab = values["vocab"]
    if not vocab or not all(isinstance(t, str) for t in vocab) or len(set(vocab)) != len(vocab):
        raise CheckpointError(f"{file} is malformed: vocab should be a non-empty list of distinct strings")
    epoch, position = values["training.epoch"], values["training.position"]
    if epoch < 0 or position < 0:
        raise CheckpointError(f"{file} is malformed: training.epoch and training.position must be >= 0")
    names = values["training.carried_state"]
    if names is not None and not all(isinstance(n, str) and n.startswith(STATE_PREFIX) for n in names):
        raise CheckpointError(f"{file} is malformed: training.carried_state should name {STATE_PREFIX}N arrays")
    step, slots = values["training.optimizer.step"], values["training.optimizer.slots"]
    if step < 0 or not all(isinstance(n, str) and n for n in slots):
        raise CheckpointError(f"{file} is malformed: training.optimizer needs a step >= 0 and slot names")
    metrics = values["metrics"]
    if len(metrics) != epoch or not all(isinstance(r, dict) for r in metrics):
        raise CheckpointError(f"{file} is malformed: {len(metrics)} metrics rows for {epoch} epochs")
    spent = state["training"].get("spent_s", 0.0)  # absent before --time-budget existed
    if isinstance(spent, bool) or not isinstance(spent, (int, float)) or not 0 <= spent < float("inf"):
        raise CheckpointError(f"{file} is malformed: training.spent_s should be a finite number of seconds >= 0")
    if position:
        for key in ("loss_sum", "norm_sum", "tokens", "clipped", "train_time"):
            value = _get(state, f"training.partial.{key}", (int, float), "a number", file)
            if not 0 <= value < float("inf"):  # NaN and inf would reach int() and the metrics
                raise CheckpointError(f"{file} is malformed: training.partial.{key} should be a finite number >= 0")
    for stream in ("init", "sampler", "decoder"):
        saved = values[f"rng.{stream}"]
        if saved is not None:
            try:
                generator_from_state(saved)
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                raise CheckpointError(
                    f"{file} is malformed: rng.{stream} is not a NumPy generator state ({exc})") from None
    if (state["rng"]["sampler"] or {}).get("bit_generator", "PCG64") != "PCG64":
        raise CheckpointError(f"{file} is malformed: rng.sampler must be a PCG64 state")
    _check_records(state, file)
    return state


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_records(state: dict, file: Path) -> None:
    """The training-data fingerprint and the metrics rows hold what resuming and summaries read."""
    data = state.get("data")
    if data is not None:
        ok = isinstance(data, dict) and isinstance(data.get("sha256"), (str, type(None))) \
            and all(isinstance(data.get(k, 0), int) and not isinstance(data.get(k, 0), bool) and data.get(k, 0) >= 0
                    for k in ("train_tokens", "val_tokens")) \
            and (data.get("val_fraction") is None or _is_number(data["val_fraction"]))
        if not ok:
            raise CheckpointError(f"{file} is malformed: data should be null or an object with sha256, token counts "
                                  "and val_fraction")
    for row in state["metrics"]:
        speed = row.get("tokens_per_s")
        if speed is not None and not _is_number(speed):
            raise CheckpointError(f"{file} is malformed: metrics rows need tokens_per_s as a number or null")


def _read_arrays(folder: Path, state: dict) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    file = folder / MODEL_FILE
    if not file.exists():
        raise CheckpointError(f"{file} is missing: the checkpoint in {folder} is incomplete")
    data = read_bounded(file, model_read_limit(state["model"]["arrays"]), CheckpointError, "checkpoint file",
                        f"{STATE_FILE} lists arrays of fewer bytes (or memory is short): restore it or use another "
                        "checkpoint")
    check_safetensors_header(data, file, CheckpointError)
    try:
        arrays = load(data)
        metadata = _header(data).get("__metadata__") or {}
    except Exception as exc:  # safetensors reports damage with its own exception types
        raise CheckpointError(
            f"{file} is truncated or corrupted ({exc}): restore it or use another checkpoint") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{_foreign_model_note(file) or file}: not a seqkit checkpoint")
    if hashlib.sha256(data).hexdigest() != state["model"]["sha256"]:
        raise CheckpointError(f"{file} does not match {STATE_FILE} (its SHA-256 differs from the one recorded "
                              "there): one of the two files was changed or damaged")
    manifest = {k: tuple(v["shape"]) if isinstance(v, dict) and isinstance(v.get("shape"), list) else None
                for k, v in state["model"]["arrays"].items()}
    actual = {k: tuple(v.shape) for k, v in arrays.items()}
    if manifest != actual:
        raise CheckpointError(f"{STATE_FILE} in {folder} disagrees with the arrays in {MODEL_FILE}: "
                              f"{_shape_diff(actual, manifest, 'state.json lists')}")
    for name, array in arrays.items():
        if array.dtype not in (np.float32, np.float64):
            raise CheckpointError(f"{file}: array {name!r} is {array.dtype}, expected float32 or float64")
    return arrays


def _shape_diff(actual: dict, expected: dict, source: str) -> str:
    notes = []
    for name in sorted(actual.keys() | expected.keys()):
        if name not in actual:
            notes.append(f"{name} is missing from {MODEL_FILE}")
        elif name not in expected:
            notes.append(f"{MODEL_FILE} has an unexpected array {name}")
        elif actual[name] != expected[name]:
            notes.append(f"{name} is {actual[name]} in {MODEL_FILE} but {source} {expected[name]}")
    return "; ".join(notes)


@dataclass
class Checkpoint:
    """A checkpoint read from disk and checked: ``state`` is state.json, ``arrays`` every named
    array (the parameters, and ``state.N`` for a carried hidden state)."""

    folder: Path
    state: dict
    arrays: dict[str, np.ndarray]

    @property
    def run_dir(self) -> Path | None:
        return run_dir_of(self.folder)

    @property
    def config(self) -> dict:
        return self.state["config"]

    @property
    def vocab(self) -> list[str]:
        return self.state["vocab"]

    @property
    def metrics(self) -> list[dict]:
        return self.state["metrics"]

    @property
    def epoch(self) -> int:
        return self.state["training"]["epoch"]

    @property
    def position(self) -> int:
        return self.state["training"]["position"]

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.arrays.items() if not k.startswith((STATE_PREFIX, OPT_PREFIX))}

    @property
    def optimizer_slots(self) -> list[str]:
        return list((self.state["training"].get("optimizer") or {}).get("slots") or [])

    def optimizer_state(self, to_native: Callable[[np.ndarray], Any]) -> OptimizerState:
        """The optimizer's slots (converted by ``to_native``) and update count."""
        slots = {slot: {name: to_native(self.arrays[f"{OPT_PREFIX}{slot}.{name}"]) for name in self.params}
                 for slot in self.optimizer_slots}
        step = (self.state["training"].get("optimizer") or {}).get("step", 0)
        return OptimizerState(slots, int(step))

    @property
    def carried(self) -> list[np.ndarray] | None:
        names = self.state["training"].get("carried_state")
        return None if not names or not self.position else [self.arrays[n] for n in names]

    def check_model(self, spec: ModelSpec, batch_size: int) -> None:
        """Raise `CheckpointError` unless the arrays fit ``spec`` (and the carried state the batch)."""
        expected = {k: tuple(v.shape) for k, v in spec.param_specs().items()}
        expected.update({f"{OPT_PREFIX}{slot}.{name}": shape for slot in self.optimizer_slots
                         for name, shape in list(expected.items())})
        names = self.state["training"].get("carried_state") or []
        if self.position and names:
            shapes = spec.cell.state_shapes(batch_size, spec.hidden_size)
            if len(names) != len(shapes):
                raise CheckpointError(f"{STATE_FILE} in {self.folder} disagrees with the arrays in {MODEL_FILE}: "
                                      f"{len(names)} carried state arrays, cell {spec.cell.name!r} has {len(shapes)}")
            expected.update({n: tuple(s) for n, s in zip(names, shapes)})
        actual = {k: tuple(v.shape) for k, v in self.arrays.items()}
        if actual != expected:
            source = (f"the config in {STATE_FILE} (cell {spec.cell.name}, hidden {spec.hidden_size}, embedding "
                      f"{spec.embedding_dim}, vocabulary of {spec.vocab_size}) needs")
            raise CheckpointError(f"{STATE_FILE} in {self.folder} disagrees with the arrays in {MODEL_FILE}: "
                                  f"{_shape_diff(actual, expected, source)}")

    def model_spec(self, registry: Any, config: Any) -> ModelSpec:
        """The `ModelSpec` the config describes, checked against the arrays."""
        cell = registry.create("cell", config.cell, **config.component_options("cell"))
        spec = ModelSpec(cell, len(self.vocab), config.hidden, config.embedding, config.get("init", "small-normal"))
        self.check_model(spec, config.batch_size)
        return spec

    def fit_state(self, to_native: Callable[[np.ndarray], Any]) -> FitState:
        """Where training stands, with the carried state converted by ``to_native``."""
        training = self.state["training"]
        partial = training.get("partial") or {}
        carried = self.carried
        return FitState(
            epoch=self.epoch, position=self.position, sampler_rng=self.state["rng"]["sampler"],
            carried=tuple(to_native(a) for a in carried) if carried else None,
            sums=RunningSums(float(partial.get("loss_sum", 0.0)), float(partial.get("norm_sum", 0.0)),
                             int(partial.get("clipped", 0))),
            tokens=int(partial.get("tokens", 0)),
            train_time=float(partial.get("train_time", 0.0)), spent_s=float(training.get("spent_s", 0.0)))

    @property
    def rng_states(self) -> dict[str, dict]:
        return {k: v for k, v in self.state["rng"].items() if k != "sampler" and v is not None}


def read_checkpoint(path: str | os.PathLike, attempts: int = 5) -> Checkpoint:
    """Find, read and check a checkpoint; any problem is a one-line `CheckpointError`.

    A run may swap a new checkpoint in while this reads (state.json of one, weights of the
    other): when the folder changed or was missing during a failed read, it is read again. (A
    swap renames the old folder aside and then the new one in: between the two renames the path
    does not exist, which must not pass for "unchanged".)"""
    for attempt in range(attempts):
        folder = locate(path)
        before = _folder_id(folder)
        try:
            state = _read_state(folder)
            return Checkpoint(folder, state, _read_arrays(folder, state))
        except CheckpointError:
            after = _folder_id(folder)
            if attempt + 1 == attempts or (before is not None and after == before):
                raise
    raise AssertionError("unreachable")


def _folder_id(folder: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_ctime_ns  # a rename changes the ctime too
