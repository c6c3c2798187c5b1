"""The resume policy: which options a resumed run may change, and whether its data is the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from seqkit.checkpoint import Checkpoint, missing_components
from seqkit.config import CORE_OPTIONS, KIND_OPTIONS, RunConfig, resolve
from seqkit.options import Option
from seqkit.store import CheckpointError

if TYPE_CHECKING:
    from seqkit.plugins import Registry
    from seqkit.vocab import Vocab

RESUMABLE_KINDS = ("backend", "decoder")  # where it runs and what it prints


def is_resumable(registry: "Registry", name: str) -> bool:
    """Whether ``--resume`` may change option ``name``: its declaration says so, or (when it is
    silent) the option belongs to a backend or a decoder."""
    opt: Option | None = CORE_OPTIONS.get(name) or registry.option_schema().get(name)
    if opt is None:
        return False
    if opt.resumable is not None:
        return opt.resumable
    return any(kind in RESUMABLE_KINDS for kind, _ in registry.option_users(name))


def saved_values(ckpt: Checkpoint, registry: "Registry") -> dict[str, Any]:
    """The checkpoint's options that still apply: per-machine ones (a device, the output folder)
    and keys no installed component declares any more are left out."""
    schema = {**CORE_OPTIONS, **registry.option_schema()}
    return {k: v for k, v in ckpt.config.items() if k in schema and schema[k].portable}


def resume_config(registry: "Registry", ckpt: Checkpoint, given: Mapping[str, Any]) -> RunConfig:
    """The checkpoint's configuration updated with ``given`` (the options set explicitly), or a
    `CheckpointError` naming every given option that contradicts the checkpoint."""
    missing = missing_components(registry, ckpt.state, tuple(KIND_OPTIONS))
    if missing:
        raise CheckpointError(f"cannot resume {ckpt.folder}: {missing}")
    saved = ckpt.config
    clashes = []
    for name, value in given.items():
        if is_resumable(registry, name) or name not in saved or _same(value, saved[name]):
            continue
        if name == "val_fraction" and value == (ckpt.state.get("data") or {}).get("val_fraction"):
            continue
        clashes.append(f"--{name.replace('_', '-')} {_show(value)} (checkpoint: {_show(saved[name])})")
    if given.get("corpus_file") is not None and saved.get("corpus") != "file":
        clashes.append(f"--corpus-file (checkpoint: --corpus {saved.get('corpus')})")
    if clashes:
        raise CheckpointError(f"{', '.join(clashes)} {'contradicts' if len(clashes) == 1 else 'contradict'} the "
                              f"checkpoint in {ckpt.folder}: leave {'it' if len(clashes) == 1 else 'them'} out to "
                              "resume, or start a new run")
    base = saved_values(ckpt, registry)
    if "out" not in given:
        base["out"] = str(ckpt.run_dir) if ckpt.run_dir else None
    config = resolve(registry, given, base=base)
    done = ckpt.epoch
    if config.epochs <= done:
        if "epochs" in given:
            raise CheckpointError(f"--epochs {given['epochs']}: the checkpoint in {ckpt.folder} has already "
                                  f"completed {done} epochs; pass a larger --epochs to train further")
        raise CheckpointError(f"the run in {ckpt.folder} already completed all {done} epochs; pass --epochs N "
                              f"with N > {done} to train further")
    if ckpt.state["rng"]["sampler"] is None:
        raise CheckpointError(f"{ckpt.folder} has no training state (no sampler RNG state): it can generate and "
                              "evaluate but not resume")
    return config


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "(default)" if value is None else str(value)


def _same(given: Any, saved: Any) -> bool:
    if isinstance(given, (list, tuple)) and isinstance(saved, (list, tuple)):
        return list(given) == list(saved)
    if isinstance(given, (list, tuple)) and len(given) == 1:
        return given[0] == saved
    return given == saved


def check_resume_data(ckpt: Checkpoint, vocab: "Vocab", fingerprint: dict) -> None:
    """Raise `CheckpointError` unless the training text is the one the checkpoint was trained on."""
    saved = ckpt.state.get("data") or {}
    same_vocab = list(vocab.idx_to_token) == ckpt.vocab
    if same_vocab and saved.get("sha256") in (None, fingerprint["sha256"]):
        return
    what = "its vocabulary differs" if not same_vocab else \
        f"{fingerprint['train_tokens']:,} training tokens now, {saved.get('train_tokens', 0):,} then, or other tokens"
    raise CheckpointError(f"the training text differs from the one the checkpoint in {ckpt.folder} was trained on "
                          f"({what}): resume needs the same corpus text and options")
