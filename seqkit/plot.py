"""Learning curves of a run folder as a PNG (matplotlib, an optional dependency)."""

from __future__ import annotations

import importlib.util
import json
import math
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
    return plot_runs([run_dir], out or Path(run_dir) / "perplexity.png", title=Path(run_dir).resolve().name)


def plot_runs(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None,
              title: str | None = None) -> Path:
    """Overlay the perplexity curves of several run folders (train solid, validation dashed, one
    colour per run, labelled by folder name or ``labels``) in one PNG at ``out``."""
    runs = [(Path(d), read_metrics(d)) for d in run_dirs]
    if importlib.util.find_spec("matplotlib") is None:
        raise UnavailableError("plotting needs matplotlib; install with: pip install 'seqkit[plot]'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, MaxNLocator, ScalarFormatter

    single = len(runs) == 1
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    values: list[float] = []
    for index, (folder, rows) in enumerate(runs):
        label = (labels[index] if labels else folder.resolve().name)
        colour = f"C{index % 10}"
        train = [(r["epoch"], r["train_ppl"]) for r in rows if _finite(r.get("train_ppl"))]
        val = [(r["epoch"], r["val_ppl"]) for r in rows if _finite(r.get("val_ppl"))]
        if train:
            ax.plot(*zip(*train), color=colour, label="train" if single else f"{label} (train)")
            if single:  # the figures at both ends, readable whatever the log ticks are
                for (epoch, value), align in ((train[0], "left"), (train[-1], "right")):
                    ax.annotate(f"{value:.3g}", (epoch, value), textcoords="offset points", xytext=(0, 6),
                                ha=align, fontsize=8, color=colour)
        if val:
            ax.plot(*zip(*val), color=colour if not single else "C1", linestyle="--",
                    label="validation" if single else f"{label} (validation)")
        values += [v for _, v in train + val]
    ax.set_yscale("log")
    if values:
        low, high = min(values), max(values)
        ax.set_ylim(low / 1.08, high * 1.2)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(_MinorEnds(values))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(title or ", ".join(folder.resolve().name for folder, _ in runs), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(out)
    try:
        fig.savefig(target)
    except OSError as exc:
        raise DataError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return target


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class _MinorEnds:
    """Label minor ticks only near both ends of the data, so short log ranges still show numbers."""

    def __init__(self, values: list[float]) -> None:
        self.low = min(values) if values else 0.0
        self.high = max(values) if values else 0.0

    def __call__(self, value: float, position: int | None = None) -> str:
        span = self.high / self.low if self.low > 0 else 0.0
        if span and span < 10 and (value <= self.low * 1.3 or value >= self.high / 1.3):
            return f"{value:g}"
        return ""
