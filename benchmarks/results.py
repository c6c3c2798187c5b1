"""The tables, the curve and the samples of docs/results.md, from finished run folders.

    python benchmarks/results.py RUN [RUN ...] --label NAME [--label NAME ...] --plot docs/img/shakespeare.png

For each run: its recipe (the options that differ from the defaults), the best validation loss in
nats per character (and bits) with the epoch and minute it was reached, the train loss of that
epoch, the wall time, the median tokens/s and the backend. Then one plot of validation loss
against minutes for all runs, and samples from the best run's best checkpoint (greedy, temperature
0.8, alpha 2). Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

PREFIX = "ROMEO:\n"
SAMPLE_LENGTH = 300


def read_run(folder: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return lines[0]["header"]["config"], [row for row in lines[1:] if "header" not in row]


def summarise(folder: Path, label: str) -> dict:
    config, rows = read_run(folder)
    scored = [r for r in rows if r.get("val_bpc") is not None]
    best = min(scored, key=lambda r: r["val_bpc"])
    return {
        "label": label, "folder": folder, "config": config, "rows": rows,
        "best_val": best["val_bpc"] * math.log(2), "best_epoch": best["epoch"], "best_minutes": best["elapsed_s"] / 60,
        "train_at_best": math.log(best["train_ppl"]), "last_val": scored[-1]["val_bpc"] * math.log(2),
        "minutes": rows[-1]["elapsed_s"] / 60, "epochs": rows[-1]["epoch"],
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows if r.get("tokens_per_s")),
    }


def table(results: list[dict]) -> str:
    lines = ["| recipe | backend | best val loss (nats/char) | bits/char | at epoch / minute | train loss then "
             "(with dropout) | last val | epochs | wall (min) | tokens/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["config"]
        lines.append(
            f"| {r['label']} | {c['backend']} ({c.get('impl', 'auto')}) | **{r['best_val']:.3f}** | "
            f"{r['best_val'] / math.log(2):.3f} | {r['best_epoch']} / {r['best_minutes']:.1f} | "
            f"{r['train_at_best']:.3f} | {r['last_val']:.3f} | {r['epochs']} | {r['minutes']:.1f} | "
            f"{r['tokens_per_s']:,.0f} |")
    return "\n".join(lines)


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for index, r in enumerate(results):
        rows = [row for row in r["rows"] if row.get("val_bpc") is not None]
        ax.plot([row["elapsed_s"] / 60 for row in rows], [row["val_bpc"] * math.log(2) for row in rows],
                color=f"C{index}", label=f"{r['label']} (best {r['best_val']:.3f})")
    ax.axhline(1.50, color="grey", linestyle=":", linewidth=1, label="1.50 nats/char")
    ax.set_xlabel("minutes")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_ylim(top=2.2)
    ax.set_title("tiny Shakespeare, single-layer RNN, validation loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def samples(folder: Path) -> str:
    import seqkit

    best = folder / "checkpoint-best"
    lines = []
    for title, options in (("greedy", {"decoder": "greedy"}),
                           ("temperature 0.8", {"decoder": "temperature", "temperature": 0.8}),
                           ("alpha 2 (p^2 renormalised)", {"decoder": "alpha", "alpha": 2.0})):
        run = seqkit.load(best if best.is_dir() else folder, backend="numpy", **options)
        text = run.predict(PREFIX, length=SAMPLE_LENGTH)
        lines.append(f"**{title}** (`seqkit generate {folder.name}/checkpoint-best --prefix 'ROMEO:' ...`):\n")
        lines.append("```\n" + text + "\n```\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--no-samples", action="store_true")
    args = parser.parse_args()
    labels = args.label + [p.name for p in args.runs[len(args.label):]]
    results = [summarise(folder, label) for folder, label in zip(args.runs, labels)]
    print(table(results))
    if args.plot:
        plot(results, args.plot)
        print(f"\n![validation loss]({args.plot})")
    if not args.no_samples:
        best = min(results, key=lambda r: r["best_val"])
        print(f"\nSamples from {best['label']} (best validation loss {best['best_val']:.3f}):\n")
        print(samples(best["folder"]))


if __name__ == "__main__":
    main()
