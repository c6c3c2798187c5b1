"""Data-parallel training across processes: the core's side (no framework imported here).

A run started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) trains data-parallel: every
rank draws the same global minibatches from the same seeded sampler and trains on its own rows
(rank r of W takes rows ``r*B/W .. (r+1)*B/W`` of a global batch of B); the gradients and the loss
are averaged across ranks before clipping, so every rank makes the update one process would.
The carried hidden state of the sequential sampler lives with the rank owning its rows; it is
gathered for a checkpoint and split again on resume, so checkpoints stay the one-process format.

The backend supplies the communication (`seqkit.backend.Backend.data_parallel`, a `DataParallel`);
this module checks the request, wraps the network and gives the pipeline its few helpers.
See docs/distributed.md.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from seqkit.backend import Params
from seqkit.dropout import DropoutMasks
from seqkit.engine import Clock
from seqkit.errors import ConfigError, SeqkitError
from seqkit.network import Network

if TYPE_CHECKING:
    from seqkit.backend import Backend
    from seqkit.engine import FitState

TIMEOUT_ENV = "SEQKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
REPEAT_SIGNAL_GRACE_S = 2.0  # torchrun forwards the terminal's Ctrl-C: the copy is the same request


class DistributedError(SeqkitError):
    """The ranks of a data-parallel run lost each other (a rank died or stopped answering)."""


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run, as torchrun's environment describes it."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env(environ: dict[str, str] | None = None) -> World | None:
    """The `World` of a launcher-started run (``WORLD_SIZE`` > 1), else None (one process)."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("WORLD_SIZE, RANK and LOCAL_RANK must be integers: start ranks with torchrun") from None
    if size <= 1:
        return None
    if not 0 <= rank < size:
        raise ConfigError(f"RANK {rank} is outside WORLD_SIZE {size}: start ranks with torchrun")
    return World(rank, size, local)


def is_main_process() -> bool:
    """True unless this is a data-parallel rank other than 0 (only rank 0 prints and writes)."""
    world = world_from_env()
    return world is None or world.is_main


def timeout_s() -> float:
    """Seconds a rank waits for the others before giving up (``SEQKIT_DIST_TIMEOUT``, default 120)."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} must be a number of seconds > 0")
    return value


class DataParallel(ABC):
    """What a backend provides for data-parallel training: collectives over its native arrays.

    Every method is a collective (all ranks call it in the same order), except `rows`."""

    def __init__(self, world: World) -> None:
        self.world = world

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a global minibatch of ``batch_size`` sequences."""
        local = batch_size // self.world.world_size
        return slice(self.world.rank * local, (self.world.rank + 1) * local)

    @abstractmethod
    def average(self, loss: float, grads: Params) -> tuple[float, Params]:
        """The loss and gradients averaged over all ranks (every rank gets the same values)."""

    @abstractmethod
    def average_scalar(self, value: float) -> float:
        """``value`` averaged over all ranks."""

    @abstractmethod
    def gather_rows(self, arrays: tuple) -> tuple:
        """Each array's rows from every rank, concatenated in rank order (on every rank)."""

    @abstractmethod
    def agree_stop(self, signum: int | None) -> int | None:
        """The stop request of any rank (the largest signal number), or None when no rank has one."""

    def shard_rows(self, arrays: tuple) -> tuple:
        """This rank's rows of each array of a whole-batch state (no communication)."""
        return tuple(a[self.rows(a.shape[0])] for a in arrays)


class ShardedNetwork(Network):
    """A network trained data-parallel: each rank computes its rows, `DataParallel` averages.

    States for a batch that divides among the ranks are sharded (this rank's rows); any other batch
    size (generation's single sequence, an evaluation with an odd number of streams) runs whole on
    every rank. Works the same over the generic and the fused networks."""

    def __init__(self, inner: Network, parallel: DataParallel) -> None:
        super().__init__(inner.backend, inner.spec)
        self.inner, self.parallel = inner, parallel
        self.impl = inner.impl
        self.supports_dropout = inner.supports_dropout

    def _sharded(self, batch_size: int) -> bool:
        return batch_size % self.parallel.world.world_size == 0

    def init_state(self, batch_size: int) -> tuple:
        size = batch_size // self.parallel.world.world_size if self._sharded(batch_size) else batch_size
        return self.inner.init_state(size)

    def loss_and_grad(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple,
                      loss_from: int = 0, masks: DropoutMasks | None = None) -> tuple[float, Params, tuple]:
        rows = self.parallel.rows(X.shape[0])
        extra = {"masks": masks.rows(rows)} if masks is not None else {}
        loss, grads, final = self.inner.loss_and_grad(params, X[rows], Y[rows], state, loss_from, **extra)
        loss, grads = self.parallel.average(loss, grads)
        return loss, grads, final

    def loss(self, params: Params, X: np.ndarray, Y: np.ndarray, state: tuple) -> tuple[float, tuple]:
        if not state or state[0].shape[0] == X.shape[0]:
            return self.inner.loss(params, X, Y, state)
        rows = self.parallel.rows(X.shape[0])
        loss, final = self.inner.loss(params, X[rows], Y[rows], state)
        return self.parallel.average_scalar(loss), final

    def step(self, params: Params, ids: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        return self.inner.step(params, ids, state)

    @contextmanager
    def decoding(self, params: Params, state: tuple) -> Iterator[Callable[[int], np.ndarray]]:
        with self.inner.decoding(params, state) as feed:
            yield feed


def check_world(backend_name: str, batch_size: int, world_size: int) -> None:
    """Raise `ConfigError` unless ``world_size`` ranks can share a global batch of ``batch_size``."""
    if backend_name != "torch":
        raise ConfigError(f"distributed training is a torch feature: backend {backend_name!r} trains in one "
                          "process; use --backend torch, or run without torchrun / --nproc")
    if world_size > batch_size:
        raise ConfigError(f"{world_size} ranks cannot share --batch-size {batch_size} (the global batch): "
                          f"use a --batch-size of at least {world_size}, or fewer ranks")
    if batch_size % world_size:
        lower, upper = batch_size - batch_size % world_size, batch_size + world_size - batch_size % world_size
        raise ConfigError(f"--batch-size {batch_size} (the global batch) does not divide among {world_size} "
                          f"ranks: use {lower} or {upper}, or a world size that divides it")


def setup(backend: "Backend", batch_size: int) -> DataParallel | None:
    """The data-parallel context of a launcher-started run (None in one process); checks the
    request, then lets the backend join the process group."""
    world = world_from_env()
    if world is None:
        return None
    check_world(backend.name, batch_size, world.world_size)
    parallel = backend.data_parallel(world)
    if parallel is None:
        raise ConfigError(f"distributed training is a torch feature: backend {backend.name!r} has no "
                          "data-parallel support; use --backend torch, or run without torchrun / --nproc")
    return parallel


def shard_fit_state(parallel: DataParallel | None, state: "FitState | None") -> "FitState | None":
    """``state`` with its carried hidden state cut to this rank's rows (for resuming)."""
    if parallel is None or state is None or state.carried is None:
        return state
    return dataclasses.replace(state, carried=parallel.shard_rows(state.carried))


def gather_fit_state(parallel: DataParallel | None, state: "FitState") -> "FitState":
    """``state`` with the whole batch's carried hidden state, gathered from every rank (for saving)."""
    if parallel is None or state.carried is None:
        return state
    return dataclasses.replace(state, carried=parallel.gather_rows(state.carried))


class AgreedClock(Clock):
    """A run clock every rank reads alike (the ranks' mean): under ``--time-budget`` the learning
    rate and the moment training stops follow the clock, and the ranks must not differ on either."""

    def __init__(self, parallel: DataParallel, spent_s: float = 0.0) -> None:
        super().__init__(spent_s)
        self.parallel = parallel

    def elapsed(self) -> float:
        return self.parallel.average_scalar(super().elapsed())


def agreed_stop(parallel: DataParallel | None,
                should_stop: Callable[[], int | None] | None) -> Callable[[], int | None] | None:
    """A stop poll that every rank answers alike: a signal on any rank stops them all."""
    if parallel is None:
        return should_stop
    return lambda: parallel.agree_stop(should_stop() if should_stop else None)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m seqkit ARGV`` as ``nproc`` ranks on this machine and return the exit status.

    The ranks get the environment ``torchrun --standalone`` gives them (``env://`` rendezvous on a
    free localhost port). Started here rather than through torchrun because its agent turns a
    Ctrl-C into a traceback and exit status 1; the ranks get the terminal's signals themselves,
    and a signal sent to this process alone is passed on to them."""
    if world_from_env() is not None:
        raise ConfigError("--nproc starts the ranks itself: leave it out when running under torchrun")
    if importlib.util.find_spec("torch") is None:
        raise ConfigError("--nproc needs torch (distributed training is a torch feature): pip install 'seqkit[torch]'")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc), GROUP_RANK="0", ROLE_RANK="0", ROLE_WORLD_SIZE=str(nproc))
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    sys.stdout.flush()
    sys.stderr.flush()
    procs = [subprocess.Popen([sys.executable, "-m", "seqkit", *argv],
                              env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank), "ROLE_RANK": str(rank)})
             for rank in range(nproc)]

    def forward(signum: int, frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [128 - code if code < 0 else code for code in codes]
    return codes[0] or next((code for code in codes if code), 0)


def without_option(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


def describe(exc: BaseException) -> str:
    """The first line of a communication error, for a one-line message."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def lost_ranks(world: World, what: str, exc: BaseException, waited_s: float) -> DistributedError:
    """The one-line error a rank raises when a collective fails."""
    return DistributedError(
        f"rank {world.rank} of {world.world_size}: {what} failed ({describe(exc)}): another rank died or did not "
        f"answer within {waited_s:g} s ({TIMEOUT_ENV}); see that rank's output, then continue from the last "
        "checkpoint with seqkit run --resume")
