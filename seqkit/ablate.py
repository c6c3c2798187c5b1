"""Ablations: the lesson's exercises trained side by side on one budget.

`ablate` trains a baseline and one variant per exercise — ReLU instead of tanh, no clipping,
random instead of sequential sampling, no detaching, an embedding instead of one-hot inputs — each
into its own run folder, then writes ``ablation.md`` (final train and validation perplexity,
tokens/s, diverged or not) and ``ablation.png`` (every curve overlaid).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Callable

from seqkit.errors import DivergedError, SeqkitError
from seqkit.output import prepare_out_dir

VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("baseline", "tanh, clipping, sequential, detached, one-hot", {}),
    ("relu", "ReLU instead of tanh", {"cell": "rnn-relu"}),
    ("no-clipping", "no gradient clipping", {"clipper": "none"}),
    ("random", "random sampling instead of sequential", {"sampler": "random"}),
    ("no-detach", "gradients through every earlier minibatch", {"no_detach": True}),
    ("embedding", "a 32-wide embedding instead of one-hot", {"embedding": 32}),
)


def ablate(out: str | Path, options: dict[str, Any], report: Callable[[str], None] = lambda line: None,
           **train_kwargs: Any) -> list[dict]:
    """Train every variant with ``options`` (the shared budget) into ``out/<variant>``; return
    one row per variant and write ``out/ablation.md`` and ``out/ablation.png``."""
    from seqkit.api import train
    from seqkit.plot import read_metrics

    folder = prepare_out_dir(out)
    rows = []
    for name, what, change in VARIANTS:
        run_dir = folder / name
        row: dict[str, Any] = {"variant": name, "change": what, "diverged": False, "error": None}
        try:
            train(progress=False, out=str(run_dir), **{**options, **change}, **train_kwargs)
        except DivergedError as exc:
            row["diverged"] = True
            row["error"] = str(exc).split(" (metrics so far")[0]
        history = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
        history = [r for r in history if "epoch" in r]
        last = history[-1] if history else {}
        speeds = [r["tokens_per_s"] for r in history if r.get("tokens_per_s")]
        row.update(epochs=len(history), train_ppl=last.get("train_ppl"), val_ppl=last.get("val_ppl"),
                   tokens_per_s=statistics.median(speeds) if speeds else None)
        rows.append(row)
        report(table_row(row))
    (folder / "ablation.md").write_text(markdown_table(rows, options), encoding="utf-8")
    drawn = [r["variant"] for r in rows if r["epochs"]]
    if drawn:
        try:
            from seqkit.plot import plot_runs

            plot_runs([folder / name for name in drawn], folder / "ablation.png", labels=drawn,
                      title="ablation: " + ", ".join(f"{k}={v}" for k, v in options.items() if k != "out"))
        except SeqkitError:
            pass  # no matplotlib: the table is the result
    return rows


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_row(row: dict) -> str:
    """One variant as a markdown table row."""
    status = "diverged" if row["diverged"] else "no"
    return (f"| {row['variant']} | {row['change']} | {row['epochs']} | {_num(row['train_ppl'], '.2f')} | "
            f"{_num(row['val_ppl'], '.2f')} | {_num(row['tokens_per_s'], ',.0f')} | {status} |")


def markdown_table(rows: list[dict], options: dict[str, Any]) -> str:
    """The ablation as a markdown table with the shared settings above it."""
    shared = ", ".join(f"`{k}={v}`" for k, v in options.items())
    lines = [f"Shared settings: {shared}", "",
             "| variant | change | epochs | train ppl | val ppl | tokens/s | diverged |",
             "|---|---|---|---|---|---|---|", *(table_row(r) for r in rows)]
    return "\n".join(lines) + "\n"
