"""Run each lesson preset on one backend and print its curve at the epochs the lessons report.

    python benchmarks/lessons.py --backend numpy [--preset d2l ...] [--max-epochs 500] [--out runs/lessons]

Each preset runs as ``seqkit run --preset NAME --backend B`` would (seed 0, float32); a preset with
more than ``--max-epochs`` epochs is shortened to that many (and said so). Prints one markdown row
per preset: train perplexity at the reported epochs, the final sample, and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import seqkit
from seqkit.plugins import get_registry

LESSONS = ("d2l-2019", "d2l", "d2l-concise", "jaychou", "straight-dope")
REPORTED = {"d2l-2019": (1, 50, 100, 200, 300, 500), "d2l": (1, 50, 100, 200, 300, 400, 500),
            "d2l-concise": (1, 50, 100, 200), "jaychou": (50, 100, 150, 200), "straight-dope": (1, 10, 20, 30)}


def run_preset(name: str, backend: str, max_epochs: int, out: Path) -> str:
    preset = get_registry().preset(name)
    epochs = preset.values.get("epochs", 500)
    shortened = epochs > max_epochs
    options = {"epochs": max_epochs} if shortened else {}
    started = time.perf_counter()
    run = seqkit.train(preset=name, backend=backend, progress=False, out=str(out / f"{name}-{backend}"),
                       checkpoint_every=0, **options)
    wall = time.perf_counter() - started
    curve = ", ".join(f"{row['epoch']} → {row['train_ppl']:.2f}" for row in run.history
                      if row["epoch"] in REPORTED.get(name, ()) or row["epoch"] == len(run.history))
    note = f" (shortened to {max_epochs} of {epochs} epochs)" if shortened else ""
    sample = run.predict(run.prefixes[0], length=50).replace("\n", " ")
    return f"| `{name}` | {backend} | {curve}{note} | `{sample}` | {wall:.0f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--preset", action="append", choices=LESSONS)
    parser.add_argument("--max-epochs", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("runs/lessons"))
    args = parser.parse_args()
    print("| preset | backend | epochs → train perplexity | last sample | wall |")
    print("|---|---|---|---|---|")
    for name in args.preset or LESSONS:
        print(run_preset(name, args.backend, args.max_epochs, args.out), flush=True)


if __name__ == "__main__":
    main()
