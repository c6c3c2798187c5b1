"""Human-readable output for the CLI (rich)."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqkit.plugins import Registry

console = Console(highlight=False, soft_wrap=True)


STEP_DISPLAY_INTERVAL_S = 0.1


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def start_lines(info: dict) -> list[str]:
    """What will run and roughly how long it will take, then the data and model sizes."""
    budget = info["time_budget_s"] - info.get("spent_s", 0.0) if info.get("time_budget_s") else None
    epochs = f"up to {info['epochs']}" if budget else str(info["epochs"])
    plan = (f"seqkit: {epochs} epochs of {info.get('batches_per_epoch', '?')} minibatches "
            f"({info['cell']} H={info['hidden']}, {info['optimizer']} lr {info['lr']:g}) on {info['corpus']} with "
            f"{info['backend']} ({info['device']}, {info['impl']}, {info['dtype']}"
            + (f", {info['matmul_dtype']} products" if info.get("matmul_dtype", info["dtype"]) != info["dtype"] else "")
            + ")")
    if budget and (not info.get("estimate_s") or info["estimate_s"] > budget):
        plan += f"; for a time budget of {_duration(budget)}"
    elif info.get("estimate_s"):
        took = _duration(info["estimate_s"])
        plan += f"; {took}" if took.startswith("under") else f"; about {took}"
    lines = [plan]
    resumed = info.get("resumed")
    if resumed:
        where = f"after epoch {resumed['epoch']}" if not resumed["position"] else \
            f"in epoch {resumed['epoch'] + 1} after minibatch {resumed['position']}"
        lines.append(f"resuming {where} from {resumed['from']}")
    lines.append(f"{info['train_tokens']:,} training tokens, {info['val_tokens']:,} held out, "
                 f"vocab {info['vocab_size']:,}, {info['num_params']:,} parameters"
                 + (f"; writing to {info['out']}" if info.get("out") else ""))
    return lines


def epoch_line(row: dict, epochs: int) -> str:
    """One logged epoch as a single line (never wrapped)."""
    val = f"  val ppl {_fmt(row['val_ppl'])} ({_fmt(row['val_bpc'], '.3f')} bits)" \
        if row.get("val_ppl") is not None else ""
    return (f"epoch {row['epoch']:>4}/{epochs}  train ppl {row['train_ppl']:.2f}{val}  lr {row['lr']:g}  "
            f"grad {row['grad_norm']:.3f} (clipped {row['clipped_fraction']:.0%})  "
            f"{_fmt(row['tokens_per_s'], ',.0f')} tok/s")


class RunPrinter:
    """Progress for `seqkit.api.train`: on a terminal (or in a notebook) a live bar through each
    epoch's minibatches with the run's elapsed time, ETA, train perplexity and tokens/s, epoch lines
    every ``log_every`` epochs and the samples as they are made; elsewhere plain lines, one per
    logged epoch, never wrapped. ``quiet`` prints only the final summary."""

    def __init__(self, epochs: int = 0, log_every: int = 10, quiet: bool = False,
                 out: Console | None = None) -> None:
        self.epochs = epochs
        self.log_every = log_every
        self.quiet = quiet
        self.console = out or Console(highlight=False, soft_wrap=True)
        self.live = self.console.is_terminal or self.console.is_jupyter
        self.progress: Any = None
        self.budget_s: float | None = None
        self.last: dict | None = None
        self.samples: list[str] = []
        self.shown_at = 0.0  # when the live display last showed a minibatch

    def __call__(self, event: str, payload: Any) -> None:
        handler = getattr(self, f"_on_{event}", None)
        if handler is not None:
            handler(payload)

    def _print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False)

    def _on_start(self, info: dict) -> None:
        self.epochs = info.get("epochs", self.epochs)
        self.log_every = info.get("log_every", self.log_every)
        self.per_epoch = max(1, int(info.get("batches_per_epoch") or 1))
        first_epoch = (info.get("resumed") or {}).get("epoch", 0)
        for line in start_lines(info):
            self._print(line)
        if self.live and not self.quiet:
            from rich.progress import (
                BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True)
            self.progress.start()
            self.budget_s = info.get("time_budget_s")  # the run bar then shows the budget's seconds
            if self.budget_s:
                self.run_task = self.progress.add_task("time budget", total=round(self.budget_s),
                                                       completed=round(info.get("spent_s", 0.0)), stats="")
            else:
                self.run_task = self.progress.add_task("run", total=self.epochs * self.per_epoch,
                                                       completed=first_epoch * self.per_epoch, stats="")
            self.epoch_task = self.progress.add_task(f"epoch {first_epoch + 1}/{self.epochs}",
                                                     total=self.per_epoch, stats="")

    def _on_step(self, state: Any) -> None:
        # The display refreshes ten times a second, and reading the running loss waits for a
        # device (seqkit.running): show a minibatch at most that often.
        now = time.monotonic()
        if self.progress is None or now - self.shown_at < STEP_DISPLAY_INTERVAL_S:
            return
        self.shown_at = now
        ppl = math.exp(min(state.loss_sum / state.tokens, 700)) if state.tokens else float("nan")
        speed = state.tokens / state.train_time if state.train_time > 0 else 0.0
        stats = f"ppl {ppl:.2f}  {speed:,.0f} tok/s"
        epoch = state.epoch + 1
        position = min(state.position, self.per_epoch)
        self.progress.update(self.epoch_task, description=f"epoch {epoch}/{self.epochs}", completed=position,
                             stats=stats)
        done = min(state.spent_s, self.budget_s) if self.budget_s else state.epoch * self.per_epoch + position
        self.progress.update(self.run_task, completed=done)

    def _on_epoch(self, row: dict) -> None:
        self.last = row
        epoch = row["epoch"]
        if epoch % self.log_every == 0 or epoch == self.epochs or epoch == 1:
            self._print(epoch_line(row, self.epochs))
        if self.progress is not None:
            if not self.budget_s:
                self.progress.update(self.run_task, completed=epoch * self.per_epoch)
            self.progress.reset(self.epoch_task, total=self.per_epoch, description=f"epoch {epoch + 1}/{self.epochs}")

    def _on_sample(self, text: str) -> None:
        self.samples.append(text)
        self._print(f"  sample: {text!r}")

    def close(self) -> None:
        """Stop the live display (also on errors)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def done(self, out: str | None) -> None:
        self.close()
        last = self.last
        if self.quiet and last is not None:
            self.console.print(epoch_line(last, self.epochs), markup=False)
            if self.samples:
                self.console.print(f"  sample: {self.samples[-1]!r}", markup=False)
        self.console.print(f"Done. Metrics, summary, plot and checkpoint in {out}" if out else "Done.", markup=False)


def plugins_as_dicts(registry: Registry) -> list[dict]:
    """Plugins with their hooks, components and availability, as JSON-ready dicts."""
    rows = []
    for info in sorted(registry.plugins.values(), key=lambda p: p.name):
        rows.append({
            "name": info.name,
            "origin": info.origin,
            "available": info.available,
            "disabled": info.disabled,
            "error": info.error,
            "refused": list(info.problems),
            "install_hint": info.install_hint,
            "hooks": sorted(set(info.hooks)),
            "components": [
                {"kind": c.kind, "name": c.name, "description": c.description,
                 "available": c.unavailable_reason is None, "reason": c.unavailable_reason}
                for c in info.components
            ],
        })
    return rows


def plugin_table(registry: Registry) -> None:
    """Print one row per component (and per plugin that failed to load)."""
    table = Table(title="seqkit plugins")
    for column in ("plugin", "kind", "name", "status", "description"):
        table.add_column(column, overflow="fold")  # a narrow terminal wraps long words instead of cutting them
    for row in plugins_as_dicts(registry):
        if row["disabled"]:
            table.add_row(row["name"], "-", "-", "[yellow]disabled[/]", "switched off by SEQKIT_DISABLE_PLUGINS")
        elif not row["available"]:
            hint = f"; {row['install_hint']}" if row["install_hint"] else ""
            status = "[red]refused[/]" if row["refused"] else "[red]failed to load[/]"
            table.add_row(row["name"], "-", "-", status, escape(f"{row['error']}{hint}"))
        for comp in row["components"]:
            status = "[green]available[/]" if comp["available"] else \
                f"[yellow]unavailable[/]: {escape(comp['reason'])}"
            table.add_row(row["name"], comp["kind"], comp["name"], status, escape(comp["description"]))
    console.print(table)


def preset_table(rows: list[dict]) -> None:
    """Print one row per preset: name, plugin, what it reproduces, the curve it should give."""
    table = Table(title="seqkit presets (seqkit run --preset NAME)")
    for column in ("preset", "plugin", "description", "source", "expected"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(row[k])) for k in ("name", "plugin", "description", "source", "expected")))
    console.print(table)
