"""TensorBoard event files for a run (tensorboardX's SummaryWriter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

from seqkit import Logger
from seqkit.errors import ConfigError
from seqkit_loggers.options import TENSORBOARD_OPTIONS

SCALARS = {"train_ppl": "perplexity/train", "val_ppl": "perplexity/validation", "val_bpc": "bits_per_token/validation",
           "lr": "optimizer/lr", "grad_norm": "gradients/norm", "clipped_fraction": "gradients/clipped_fraction",
           "tokens_per_s": "speed/tokens_per_s"}


class TensorBoardLogger(Logger):
    """Writes each epoch's perplexities, bits per token, learning rate, gradient norm, clipped
    fraction and tokens/s as scalars, and the samples and the configuration as text, under
    ``OUT/tensorboard`` (or ``--tensorboard-dir``). View with ``tensorboard --logdir OUT``."""

    name = "tensorboard"
    description = "TensorBoard event files: perplexities, bits, lr, gradient norm, clipping, tokens/s, samples"
    options = TENSORBOARD_OPTIONS

    def __init__(self, tensorboard_dir: str | None = None) -> None:
        self.folder = Path(tensorboard_dir) if tensorboard_dir else None
        self.writer: SummaryWriter | None = None

    def seqkit_run_started(self, run: Any, info: dict) -> None:
        folder = self.folder or (run.out_dir / "tensorboard" if run.out_dir else None)
        if folder is None:
            raise ConfigError("--logger tensorboard needs a folder: pass --out or --tensorboard-dir")
        self.writer = SummaryWriter(str(folder))
        lines = [f"{key} = {value!r}" for key, value in run.config.to_dict().items()]
        self.writer.add_text("config", "    " + "\n    ".join(lines), 0)

    def seqkit_epoch_ended(self, run: Any, row: dict) -> None:
        if self.writer is None:
            return
        for key, tag in SCALARS.items():
            value = row.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), row["epoch"])
        self.writer.flush()

    def seqkit_sample_generated(self, run: Any, text: str, epoch: int) -> None:
        if self.writer is not None:
            self.writer.add_text("sample", text, epoch)

    def seqkit_run_finished(self, run: Any, status: str, error: str | None) -> None:
        if self.writer is not None:
            self.writer.add_text("status", status + (f": {error}" if error else ""), len(run.history))
            self.writer.close()
            self.writer = None
