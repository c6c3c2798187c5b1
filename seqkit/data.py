"""Framework-free access to corpus files: locate, download, verify and read text.

A corpus file is looked for in the ``--data-dir`` folder, then in ``$SEQKIT_DATA``, then in the
cache (`cache_dir`); when it is nowhere, it is downloaded into the cache. Every file found or
downloaded must have the expected SHA-1. Errors are `seqkit.errors.DataError` with a message that
says what to do.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

from seqkit.errors import DataError
from seqkit.limits import max_corpus_bytes, read_bounded

__all__ = ["cache_dir", "locate", "read_text_file", "sha1_of", "strip_gutenberg"]

DATA_ENV = "SEQKIT_DATA"
CACHE_ENV = "SEQKIT_CACHE"
DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 16

log = logging.getLogger(__name__)


def sha1_of(path: str | os.PathLike[str]) -> str:
    """The hex SHA-1 digest of the file at ``path``."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where downloads go: ``$SEQKIT_CACHE``, else ``$XDG_CACHE_HOME/seqkit``, else ``~/.cache/seqkit``.

    The folder is not created here."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "seqkit"


def _search_dirs(data_dir: Path | None) -> list[Path]:
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get(DATA_ENV)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(cache_dir())
    return dirs


def _verify(path: Path, url: str, sha1: str) -> Path:
    try:
        actual = sha1_of(path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if actual != sha1.lower():
        raise DataError(
            f"{path} has SHA-1 {actual}, expected {sha1}: delete it or replace it with the file "
            f"from {url}")
    return path


def locate(filename: str, url: str, sha1: str, data_dir: Path | None = None, *,
           timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """The path of a verified copy of ``filename``, downloading it from ``url`` if needed.

    Looks in ``data_dir`` (the ``--data-dir`` option), then ``$SEQKIT_DATA``, then `cache_dir`;
    the first copy found must have SHA-1 ``sha1``. Otherwise downloads ``url`` into the cache
    (atomically, verified before it is put in place). Raises `DataError` on a checksum mismatch
    or when the file can be neither found nor downloaded."""
    dirs = _search_dirs(data_dir)
    for folder in dirs:
        candidate = folder / filename
        if candidate.is_file():
            return _verify(candidate, url, sha1)
    target = cache_dir() / filename
    try:
        _download(url, target, sha1, timeout)
    except _DownloadFailed as exc:
        where = (f"the --data-dir folder ({dirs[0]})" if data_dir is not None
                 else "a folder passed as --data-dir DIR") + f" or named by ${DATA_ENV}"
        raise DataError(
            f"{filename} is not available offline (downloading {url} failed: {exc}): put "
            f"{filename} in {where}, or at {target}; it comes from {url}") from exc
    return target


class _DownloadFailed(Exception):
    """The download could not be made (network, HTTP or file-system trouble)."""


def _download(url: str, target: Path, sha1: str, timeout: float) -> None:
    """Fetch ``url`` to ``target`` through a temp file in the same folder; verify, then rename."""
    import http.client
    import urllib.error
    import urllib.request

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _DownloadFailed(f"cannot create {target.parent}: {exc.strerror or exc}") from exc
    log.info("downloading %s to %s", url, target)
    request = urllib.request.Request(url, headers={"User-Agent": "seqkit"})
    digest = hashlib.sha1()
    tmp_path: str | None = None
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha1.lower():
            raise DataError(
                f"the file downloaded from {url} has SHA-1 {actual}, expected {sha1}; it was not "
                f"saved. Put a copy of {target.name} with the expected SHA-1 in ${DATA_ENV}")
        os.replace(tmp_path, target)
        tmp_path = None
    except urllib.error.HTTPError as exc:
        raise _DownloadFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _DownloadFailed(str(exc.reason)) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _DownloadFailed(str(exc) or type(exc).__name__) from exc
    finally:
        if tmp_path is not None:
            try:
                os.unlink(tmp_path)
            except FileNotFoundError:
                pass


def read_text_file(path: str | os.PathLike[str], encoding: str = "utf-8", max_bytes: int | None = None) -> str:
    """The text of the file at ``path`` decoded with ``encoding``, a leading BOM dropped.

    Raises `DataError` when the file is missing or unreadable, is not a regular file (a device,
    pipe or socket: refused without reading), is larger than ``max_bytes`` (default
    `seqkit.limits.max_corpus_bytes`: what the available memory can tokenise), cannot be decoded
    (the message names the byte offset and suggests ``--encoding``), the encoding is unknown, or
    the text is empty or only whitespace."""
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"unknown text encoding {encoding!r} for {path}: pass --encoding with a Python codec "
            "name such as utf-8 or latin-1") from None
    limit = max_corpus_bytes() if max_bytes is None else max_bytes
    data = read_bounded(path, limit, DataError, "text file",
                        "train on a part of it (split the file) or free memory")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path} is not valid {encoding}: cannot decode byte offset {exc.start} (line {line}); "
            "pass --encoding with the file's encoding, e.g. --encoding latin-1") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DataError(f"{path} is empty")
    return text


_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF", re.IGNORECASE)
_GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF", re.IGNORECASE)


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg e-book: the lines between ``*** START OF ...`` and
    ``*** END OF ...`` (to the end when there is no END line). Text without a START line is
    returned unchanged."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _GUTENBERG_START.match(line)), None)
    if start is None:
        return text
    end = next((i for i in range(start + 1, len(lines)) if _GUTENBERG_END.match(lines[i])),
               len(lines))
    return "".join(lines[start + 1:end])
