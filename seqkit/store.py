"""The atomic checkpoint folder store: write a folder of files so a crash never loses the last one.

A checkpoint folder (``<run>/checkpoint/``) is written into a fresh sibling ``.checkpoint.new``
(temp file, fsync, rename for each file), then swapped in by renames; the previous folder waits
in ``.checkpoint.old`` until the swap is done, and readers fall back to it. This module knows
folders and bytes only; what the files hold is `seqkit.checkpoint`'s business.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from seqkit.errors import SeqkitError

FORMAT = "seqkit-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoint"


class CheckpointError(SeqkitError):
    """A checkpoint is missing, damaged, from another tool or version, or contradicts the options."""


def _sibling(folder: Path, kind: str) -> Path:
    return folder.with_name(f".{folder.name}.{kind}")


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _recover(folder: Path) -> None:
    """Finish what an interrupted swap left: the previous checkpoint back in place, debris removed."""
    old = _sibling(folder, "old")
    if old.is_dir() and not folder.exists():
        os.replace(old, folder)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(_sibling(folder, "new"), ignore_errors=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_checkpoint(folder: str | os.PathLike, arrays: dict[str, np.ndarray], state: dict) -> Path:
    """Write the pair atomically as ``folder``: both files go into ``.<name>.new`` (temp file,
    fsync, rename each), which then replaces ``folder`` by renames. Records the weights' SHA-256
    in ``state["model"]["sha256"]``. Returns the folder."""
    from safetensors.numpy import save

    folder = Path(folder)
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _recover(folder)
        new.mkdir()
        data = save({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                    metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
        state = {**state, "model": {**state.get("model", {}), "sha256": hashlib.sha256(data).hexdigest()}}
        text = json.dumps(state, indent=1, ensure_ascii=False, default=_json_default) + "\n"
        _write_file(new / MODEL_FILE, data)
        _write_file(new / STATE_FILE, text.encode("utf-8"))
        _fsync_dir(new)
        if folder.exists():
            os.replace(folder, old)
        os.replace(new, folder)
        _fsync_dir(folder.parent)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise CheckpointError(f"cannot write the checkpoint {folder}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    return folder


def checkpoint_target(path: str | os.PathLike) -> Path:
    """Where `save_run` writes for ``path``: ``path`` itself when it is a checkpoint folder
    already, else ``path/checkpoint`` (a run's output folder)."""
    path = Path(path)
    is_checkpoint = (path / STATE_FILE).is_file() or (not path.exists() and _sibling(path, "old").is_dir())
    return path if is_checkpoint else path / CHECKPOINT_DIR


def _has_files(folder: Path) -> bool:
    return (folder / STATE_FILE).exists() or (folder / MODEL_FILE).exists()


def run_dir_of(folder: Path) -> Path | None:
    """The run folder a checkpoint folder belongs to (its parent when named ``checkpoint``)."""
    return folder.parent if folder.name in (CHECKPOINT_DIR, f".{CHECKPOINT_DIR}.old") else None


def locate(path: str | os.PathLike) -> Path:
    """The checkpoint folder meant by ``path``: a run's output folder, a checkpoint folder, or a
    file in one. Falls back to the previous checkpoint an interrupted save left aside."""
    given = Path(path).expanduser()
    if not given.exists():
        if _sibling(given, "old").is_dir():
            return _sibling(given, "old")
        raise CheckpointError(f"{given} does not exist: pass a run's --out folder or its {CHECKPOINT_DIR}/ folder")
    folder = given
    if given.is_file():
        if given.name not in (MODEL_FILE, STATE_FILE):
            raise CheckpointError(f"{given} is not a seqkit checkpoint: pass the folder holding {MODEL_FILE} "
                                  f"and {STATE_FILE}, or a run's --out folder")
        folder = given.parent
    if _has_files(folder):
        return folder
    for candidate in (folder / CHECKPOINT_DIR, _sibling(folder / CHECKPOINT_DIR, "old")):
        if candidate.is_dir() and _has_files(candidate):
            return candidate
    raise CheckpointError(f"{folder} holds no seqkit checkpoint (no {CHECKPOINT_DIR}/ folder, {STATE_FILE} or "
                          f"{MODEL_FILE}): pass a run's --out folder")
