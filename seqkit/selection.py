"""Model selection on the held-out text: the best validation loss so far, and early stopping.

The state is a small dict kept on the `seqkit.api.Run` and stored in every checkpoint
(``state.json`` → ``selection``), so a resumed run keeps its best model and its patience.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

BEST_DIR = "checkpoint-best"
EVALS_FILE = "evals.jsonl"


@dataclass
class Selection:
    """Where the best validation loss was seen and how many evaluations have passed without a
    better one. ``evaluations`` counts every evaluation of the held-out text."""

    best_loss: float | None = None
    best_epoch: int | None = None
    best_step: int | None = None
    evaluations: int = 0
    since_best: int = 0

    def observe(self, loss: float, epoch: int, step: int) -> bool:
        """Record one evaluation; True when it is the best so far (never for a loss that is not
        finite: parameters that diverged, where the fit loop has not read the loss yet, are not kept)."""
        self.evaluations += 1
        if math.isfinite(loss) and (self.best_loss is None or loss < self.best_loss):
            self.best_loss, self.best_epoch, self.best_step, self.since_best = loss, epoch, step, 0
            return True
        self.since_best += 1
        return False

    def patience_spent(self, early_stop: int) -> bool:
        """Whether ``early_stop`` evaluations in a row brought no improvement (0 = never stop)."""
        return bool(early_stop) and self.since_best >= early_stop

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Selection":
        """The saved state, or a fresh one when ``data`` is missing or malformed."""
        if not isinstance(data, dict):
            return cls()
        fields = {k: data.get(k) for k in ("best_loss", "best_epoch", "best_step")}
        counts = {k: data.get(k, 0) for k in ("evaluations", "since_best")}
        if not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in fields.values()):
            return cls()
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
            return cls()
        return cls(**fields, **counts)


class EarlyStop(Exception):
    """Raised inside training when the patience of ``--early-stop`` is spent."""
