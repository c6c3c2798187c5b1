"""The `Logger` interface: something that watches a run through the lifecycle hooks.

A logger is selected with ``--logger NAME`` (repeatable). For the length of a run its instance is
registered with the plugin manager like any plugin, so its methods named after the lifecycle hooks
in `seqkit.hookspecs` (``seqkit_run_started``, ``seqkit_epoch_ended``, ...) are called with the
hooks' arguments; it needs no ``@hookimpl`` markers. Override the ones you need: the defaults do
nothing. A plugin that should watch every run, selected or not, implements the same hooks as
plain ``@seqkit.hookimpl`` functions instead (the built-in metrics.jsonl writer does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from seqkit.options import Option

LIFECYCLE_HOOKS = ("seqkit_run_started", "seqkit_step_ended", "seqkit_epoch_ended", "seqkit_sample_generated",
                   "seqkit_checkpoint_saved", "seqkit_run_finished")


class Logger:
    """Watches one run. Constructed with its declared ``options``; each method is a lifecycle hook."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    def seqkit_run_started(self, run: Any, info: dict) -> None:
        """Training is about to start (see `seqkit.hookspecs.seqkit_run_started`)."""

    def seqkit_step_ended(self, run: Any, state: Any) -> None:
        """A minibatch was trained (see `seqkit.hookspecs.seqkit_step_ended`)."""

    def seqkit_epoch_ended(self, run: Any, row: dict) -> None:
        """An epoch ended with its metrics row (see `seqkit.hookspecs.seqkit_epoch_ended`)."""

    def seqkit_sample_generated(self, run: Any, text: str, epoch: int) -> None:
        """A sample was generated (see `seqkit.hookspecs.seqkit_sample_generated`)."""

    def seqkit_checkpoint_saved(self, run: Any, folder: Path) -> None:
        """A checkpoint was written (see `seqkit.hookspecs.seqkit_checkpoint_saved`)."""

    def seqkit_run_finished(self, run: Any, status: str, error: str | None) -> None:
        """The run ended (see `seqkit.hookspecs.seqkit_run_finished`)."""
