"""``metrics.jsonl``: a header row with the run's configuration, then one row per epoch."""

from __future__ import annotations

import json
from typing import Any

import seqkit
from seqkit import hookimpl
from seqkit.output import append_jsonl

METRICS_FILE = "metrics.jsonl"


@hookimpl
def seqkit_run_started(run: Any, info: dict) -> None:
    """Write the header and the rows so far (a resumed run's) into ``OUT/metrics.jsonl``."""
    if run.out_dir is None:
        return
    header = {"header": {"seqkit_version": seqkit.__version__, "config": run.config.to_dict()}}
    rows = [header, *run.history]
    (run.out_dir / METRICS_FILE).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                           encoding="utf-8")


@hookimpl
def seqkit_epoch_ended(run: Any, row: dict) -> None:
    """Append the epoch's row and flush it to disk."""
    if run.out_dir is not None:
        append_jsonl(run.out_dir / METRICS_FILE, row)
