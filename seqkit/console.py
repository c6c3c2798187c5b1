"""Human-readable output for the CLI (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqkit.plugins import Registry

console = Console(highlight=False)


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


class RunPrinter:
    """Progress callback for `seqkit.api.train`: a line every ``log_every`` epochs and each sample."""

    def __init__(self, epochs: int, log_every: int) -> None:
        self.epochs = epochs
        self.log_every = log_every
        self.last: dict | None = None

    def __call__(self, event: str, payload: Any) -> None:
        if event == "start":
            self.epochs = payload.get("epochs", self.epochs)
            resumed = payload.get("resumed")
            if resumed:
                where = f"after epoch {resumed['epoch']}" if not resumed["position"] else \
                    f"in epoch {resumed['epoch'] + 1} after minibatch {resumed['position']}"
                console.print(f"resuming {where} from {resumed['from']}", markup=False)
            console.print(
                f"[bold]seqkit[/] {payload['backend']} ({payload['device']}, {payload['impl']}, {payload['dtype']}): "
                f"{payload['train_tokens']:,} training tokens, {payload['val_tokens']:,} held out, "
                f"vocab {payload['vocab_size']:,}, {payload['num_params']:,} parameters")
        elif event == "epoch":
            self.last = payload
            epoch = payload["epoch"]
            if epoch % self.log_every == 0 or epoch == self.epochs or epoch == 1:
                val = f"  val ppl {_fmt(payload['val_ppl'])} ({_fmt(payload['val_bpc'], '.3f')} bits)" \
                    if payload["val_ppl"] is not None else ""
                console.print(
                    f"epoch {epoch:>4}/{self.epochs}  train ppl {payload['train_ppl']:.2f}{val}  "
                    f"lr {payload['lr']:g}  grad {payload['grad_norm']:.3f} "
                    f"(clipped {payload['clipped_fraction']:.0%})  {_fmt(payload['tokens_per_s'], ',.0f')} tok/s")
        elif event == "sample":
            console.print(f"  [cyan]sample:[/] {payload!r}")

    def done(self, out: str | None) -> None:
        console.print(f"Done. Metrics, summary and checkpoint in {out}" if out else "Done.",
                      markup=False)


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
        table.add_column(column)
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
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(str(row[k])) for k in ("name", "plugin", "description", "source", "expected")))
    console.print(table)
