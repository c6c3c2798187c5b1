"""One writer per run folder: an OS file lock held while a run writes its ``--out`` folder.

``<run folder>/.seqkit.lock`` is locked with ``fcntl.flock`` for as long as a training run (or a
checkpoint save) writes the folder, and records the holder's PID, host, command line and start
time, so a second writer is refused with a message naming that process. The kernel releases the
lock when the holder exits in any way (kill -9 included); a lock file left behind by a dead
process is simply taken over. Where the file system has no locks (some network mounts), the
recorded PID decides: a live process on this host keeps the folder, a dead one's lock is stale.
Readers (``generate``, ``evaluate``, ``seqkit.load``) never take the lock.

Use: `holds_run_locks` wraps a function (``api.train``) in a scope; inside it `lock_run_dir`
(called by ``output.prepare_out_dir``) locks a folder until the scope ends, and `guard_run_dir`
(around a checkpoint save) locks for the duration of one write unless the scope holds it already.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from seqkit.errors import SeqkitError

__all__ = ["LOCK_FILE", "Holder", "RunLock", "RunLockedError", "guard_run_dir", "holds_run_locks", "lock_run_dir",
           "lock_holder"]

LOCK_FILE = ".seqkit.lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_MAX_INFO_BYTES = 1 << 16
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a planted symlink must not redirect the lock file
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class RunLockedError(SeqkitError):
    """A run folder is being written by another process (the message names it)."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a run folder's lock, as recorded in the lock file."""

    pid: int | None
    host: str
    command: str
    since: str

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool | None:
        """Whether the process still runs (None: on another host, cannot tell)."""
        if not self.on_this_host or self.pid is None:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True

    def describe(self) -> str:
        who = f"process {self.pid}" if self.pid is not None else "an unknown process"
        if self.pid == os.getpid() and self.on_this_host:
            who += " (this process)"
        details = ", ".join(x for x in (self.command and f"`{self.command}`", self.since and f"since {self.since}") if x)
        return f"{who} on {self.host or 'an unknown host'}" + (f" ({details})" if details else "")


def _parse_holder(data: bytes) -> Holder | None:
    try:
        info = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(info, dict):
        return None
    pid = info.get("pid")
    text = {k: info.get(k) if isinstance(info.get(k), str) else "" for k in ("host", "command", "since")}
    return Holder(pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
                  text["host"], text["command"][:200], text["since"])


def _read_holder_fd(fd: int) -> Holder | None:
    try:
        return _parse_holder(os.pread(fd, _MAX_INFO_BYTES, 0))
    except OSError:
        return None


def lock_holder(folder: str | os.PathLike[str]) -> Holder | None:
    """The holder recorded in ``folder``'s lock file, or None. (A record, not proof the lock is held.)"""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | _NOFOLLOW)
    except OSError:
        return None
    try:
        return _read_holder_fd(fd)
    finally:
        os.close(fd)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _command_line() -> str:
    args = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    if args[0] in ("-c", "-m"):
        args[0] = "python " + args[0]
    return " ".join(args)[:200]


class RunLock:
    """The lock on one run folder. `acquire` raises `RunLockedError` naming the holder; `release`
    (also on garbage collection and, by the kernel, on process exit) frees it and removes the file."""

    def __init__(self, folder: str | os.PathLike[str], action: str = "write") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.action = action
        self.fd: int | None = None
        self.took_over: Holder | None = None  # a stale holder found in the file when acquiring

    @property
    def held(self) -> bool:
        return self.fd is not None

    def _refuse(self, holder: Holder | None, advice: str) -> RunLockedError:
        who = holder.describe() if holder else "another process"
        if holder is not None and holder.alive() is False:
            who += ", which is gone; a process it started still holds the lock"
        return RunLockedError(f"{self.folder} is locked by a seqkit run writing it: {who}; {advice}")

    def acquire(self, advice: str = "wait for it to finish or stop it") -> "RunLock":
        """Take the lock (without waiting) and record this process in the lock file."""
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): the recorded PID decides, as on lock-less file systems
            fcntl = None
        if self.held:
            return self
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | _NOFOLLOW, 0o644)
            except OSError as exc:
                raise RunLockedError(f"cannot create the lock file {self.path}: {exc.strerror or exc}; "
                                     "check the folder's permissions or choose another folder") from None
            try:
                if fcntl is None:
                    raise OSError(errno.ENOSYS, "no fcntl")
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder_fd(fd)
                os.close(fd)
                raise self._refuse(holder, advice) from None
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    os.close(fd)
                    raise RunLockedError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
                holder = _read_holder_fd(fd)  # no OS locks here: the recorded PID decides
                if holder is not None and holder.pid != os.getpid() and holder.alive() is not False:
                    os.close(fd)
                    raise self._refuse(holder, advice + f" (or delete {self.path} if that process is gone)") \
                        from None
            if _identity(self.path) != (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                os.close(fd)  # the previous holder removed the file between our open and lock: retry
                continue
            previous = _read_holder_fd(fd)
            if previous is not None and previous.alive() is False:
                self.took_over = previous
                log.info("took over the stale lock of %s", previous.describe())
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_line(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            data = json.dumps(info).encode("utf-8") + b"\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            self.fd = fd
            return self
        raise RunLockedError(f"cannot lock {self.path}: it keeps being replaced; try again")

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and free the lock."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if _identity(self.path) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown: the kernel frees the lock anyway
            pass


_scope: contextvars.ContextVar[dict | None] = contextvars.ContextVar("seqkit_run_locks", default=None)


@contextlib.contextmanager
def _lock_scope() -> Iterator[dict]:
    held: dict = {}
    token = _scope.set(held)
    try:
        yield held
    finally:
        _scope.reset(token)
        for lock in reversed(list(held.values())):
            lock.release()


def holds_run_locks(function: F) -> F:
    """Run ``function`` in a scope whose `lock_run_dir` locks are released when it returns or raises.

    With a ``resume`` keyword naming a run's checkpoint, that run's folder is locked first, so a
    run being written cannot be resumed (even into another ``--out``)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock_scope():
            resume = kwargs.get("resume")
            if resume is not None and is_main_process():  # data-parallel: rank 0 holds the locks
                _lock_resumed(resume)
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def is_main_process() -> bool:
    """Whether this process writes run folders (not a data-parallel rank other than 0)."""
    from seqkit.distributed import is_main_process as main

    return main()


def _lock_resumed(resume: Any) -> None:
    from seqkit.checkpoint import CheckpointError, locate, run_dir_of

    try:
        run_dir = run_dir_of(locate(resume))
    except CheckpointError:
        return  # the resume itself reports it
    if run_dir is not None:
        lock_run_dir(run_dir, "wait for it to finish or stop it before resuming")


def lock_run_dir(folder: str | os.PathLike[str], advice: str = "wait for it to finish, stop it, or choose another "
                 "--out") -> RunLock | None:
    """Lock ``folder`` until the current `holds_run_locks` scope ends (a no-op outside one);
    raise `RunLockedError` naming the process that writes it."""
    held = _scope.get()
    key = _identity(Path(folder))
    if held is None or key is None:
        return None
    if key not in held:
        held[key] = RunLock(folder).acquire(advice)
    return held[key]


@contextlib.contextmanager
def guard_run_dir(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    """Hold ``folder``'s lock while the block writes into it: nothing to do when this scope holds
    it already or the folder does not exist yet; `RunLockedError` when a run is writing it."""
    key = _identity(Path(folder)) if folder is not None else None
    held = _scope.get()
    if key is None or (held is not None and key in held):
        yield
        return
    with RunLock(folder).acquire("wait for it to finish or save elsewhere"):  # type: ignore[arg-type]
        yield
