"""A run's output folder: created and checked before training, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from seqkit.errors import ConfigError
from seqkit.runlock import lock_run_dir

RUNS_DIR = "runs"


def default_out_dir(corpus: str, backend: str) -> Path:
    """``runs/<UTC time>-<corpus>-<backend>``, made unique with a counter if needed."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path(RUNS_DIR) / f"{stamp}-{corpus}-{backend}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_out_dir(path: str | Path) -> Path:
    """Create ``path``, prove it is writable and lock it for this run, or raise `ConfigError` (or
    `seqkit.runlock.RunLockedError` when another run writes it) before any training."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot write to output folder {out}: {reason}; choose another --out") from None
    lock_run_dir(out)  # held until the run ends (inside seqkit.runlock.holds_run_locks)
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it the mode open() would
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def append_jsonl(path: Path, row: dict) -> None:
    """Append one JSON object as a line and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
