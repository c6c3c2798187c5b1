"""Learning curves of a run folder as a PNG (matplotlib, an optional dependency)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from seqkit.errors import DataError, UnavailableError

METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-epoch rows of ``run_dir/metrics.jsonl`` (its header row, which holds the run's
    configuration, left out); a clear `DataError` when missing, empty or damaged."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist: pass a run's --out folder")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number} is not valid JSON ({exc.msg})") from None
        if not (isinstance(row, dict) and "header" in row):
            rows.append(row)
    if not rows:
        raise DataError(f"{path} has no rows yet: train at least one epoch")
    return rows


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw train (and validation) perplexity per epoch, log scale; returns the PNG's path
    (default ``run_dir/perplexity.png``)."""
    rows = read_metrics(run_dir)
    if importlib.util.find_spec("matplotlib") is None:
        raise UnavailableError("plotting needs matplotlib; install with: pip install 'seqkit[plot]'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(epochs, [r["train_ppl"] for r in rows], label="train")
    val = [(r["epoch"], r["val_ppl"]) for r in rows if r.get("val_ppl") is not None]
    if val:
        ax.plot(*zip(*val), label="validation")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_title(Path(run_dir).resolve().name, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    target = Path(out) if out else Path(run_dir) / "perplexity.png"
    try:
        fig.savefig(target)
    except OSError as exc:
        raise DataError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return target
