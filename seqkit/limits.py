"""Bounds on everything seqkit reads or is asked to produce, so no input can hang it or make it
allocate without limit.

`read_bounded` is the one way seqkit reads a whole file that a user or a checkpoint names: it
refuses devices, pipes and sockets without blocking on them, and refuses files over a size cap
before reading a byte. The ``check_*`` functions bound lengths that come from options or files.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from seqkit.errors import ConfigError, SeqkitError

__all__ = [
    "MAX_CORPUS_BYTES", "MAX_HEADER_BYTES", "MAX_PREFIX_CHARS", "MAX_STATE_BYTES",
    "check_prefix", "describe_size", "max_corpus_bytes", "read_bounded",
]

MAX_PREFIX_CHARS = 1_000_000       # characters of a warm-up prefix
MAX_STATE_BYTES = 64 << 20         # a checkpoint's state.json
MAX_HEADER_BYTES = 16 << 20        # the JSON header of a safetensors file
MAX_CORPUS_BYTES = 4 << 30         # a text file read as a corpus, whatever the memory
# Reading a text as characters costs far more than its bytes: the str, a list of one-character
# tokens (8-byte pointers), int64 ids and the vocabulary's counts.
CORPUS_MEMORY_FACTOR = 32


def describe_size(num_bytes: float) -> str:
    """``num_bytes`` in binary units with three significant figures, e.g. ``29.1 TiB``."""
    value = float(min(num_bytes, 1e300))  # past that, digits say nothing more
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path: str | os.PathLike[str], max_bytes: int, error: type[SeqkitError] = SeqkitError,
                 what: str = "file", hint: str = "") -> bytes:
    """The bytes of the regular file at ``path``, refusing anything else without blocking.

    Devices, pipes, sockets and folders raise ``error`` naming the kind of file; a file of more
    than ``max_bytes`` raises ``error`` with its size before anything is read (``hint`` is added
    to that message: what to do instead). A file that grows past the cap while being read is
    refused too. Missing and unreadable files raise ``error`` with the system's reason."""
    path = Path(path)
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is None:
            # O_NONBLOCK: opening a FIFO that replaced the file since the stat must not wait for a writer.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
        else:
            fd = -1
    except FileNotFoundError:
        raise error(f"{path} does not exist: check the path") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket or a FIFO without writer
            raise error(f"{path} is not a regular file: pass a {what} on disk") from None
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if fd < 0:
        raise error(f"{path} is {kind}, not a regular file: pass a {what} on disk")
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)
        if kind is not None:
            raise error(f"{path} is {kind}, not a regular file: pass a {what} on disk")
        if info.st_size > max_bytes:
            raise error(f"{path} is {describe_size(info.st_size)}, more than the {describe_size(max_bytes)} "
                        f"seqkit reads as a {what}{'; ' + hint if hint else ''}")
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            if info.st_size:
                data = f.read(info.st_size + 1)
                grew = len(data) > info.st_size
            else:  # files such as those in /proc report size 0: read up to the cap
                chunks, total = [], 0
                while total <= max_bytes and (chunk := f.read(1 << 20)):
                    chunks.append(chunk)
                    total += len(chunk)
                data, grew = b"".join(chunks), total > max_bytes
        if grew:
            raise error(f"{path} grew while being read: pass a {what} that is not being written")
        return data
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def max_corpus_bytes() -> int:
    """The largest text file read as a corpus: `MAX_CORPUS_BYTES`, or less when the memory
    available now could not hold its tokens (`CORPUS_MEMORY_FACTOR` bytes per byte)."""
    from seqkit.resources import available_memory

    available = available_memory()
    if available is None:
        return MAX_CORPUS_BYTES
    return max(1 << 20, min(MAX_CORPUS_BYTES, available // CORPUS_MEMORY_FACTOR))


def check_prefix(prefix: Any) -> None:
    """Raise `ConfigError` when ``prefix`` is not a string or longer than `MAX_PREFIX_CHARS`."""
    if not isinstance(prefix, str):
        raise ConfigError(f"--prefix must be a string, got {type(prefix).__name__}")
    if len(prefix) > MAX_PREFIX_CHARS:
        raise ConfigError(f"--prefix has {len(prefix):,} characters, more than the {MAX_PREFIX_CHARS:,} "
                          "seqkit warms up on; pass a shorter prefix")


def model_read_limit(manifest: Any) -> int:
    """The most bytes worth reading of a checkpoint's safetensors file: what the arrays listed in
    state.json (``model.arrays``: name -> {"shape": [...]}) take as float64, plus the largest
    header, and never more than half the available memory (loading copies the arrays). Without a
    manifest (None) only the memory bounds it."""
    from seqkit.resources import available_memory

    expected = 8 + MAX_HEADER_BYTES if manifest is not None else 1 << 50
    for entry in (manifest.values() if isinstance(manifest, dict) else ()):
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            size = 8
            for d in shape:
                size *= d
            expected += size
    available = available_memory()
    return expected if available is None else min(expected, max(available // 2, 1 << 20))


def check_safetensors_header(data: bytes, path: Any, error: type[SeqkitError] = SeqkitError) -> None:
    """Raise ``error`` unless ``data`` starts with a safetensors header length that fits both the
    file and `MAX_HEADER_BYTES` (checked before any parser sees the header)."""
    if len(data) < 8:
        raise error(f"{path} is truncated or corrupted ({len(data)} bytes, no safetensors header): restore it "
                    "or use another checkpoint")
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER_BYTES or size > len(data) - 8:
        raise error(f"{path} is truncated or corrupted (its header claims {size:,} bytes of a {len(data):,}-byte "
                    f"file; at most {describe_size(MAX_HEADER_BYTES)} are read): restore it or use another checkpoint")
