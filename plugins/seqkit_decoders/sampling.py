"""Next-token pickers: argmax, softmax(logits / T), and p^alpha renormalised."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqkit import Decoder, Option
from seqkit.decoder import softmax

if TYPE_CHECKING:
    import numpy as np


class GreedyDecoder(Decoder):
    """Always the most likely token (ties: the lowest id)."""

    name = "greedy"
    description = "argmax"

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        import numpy as np
        probs = np.zeros(len(logits))
        probs[int(np.argmax(logits))] = 1.0
        return probs

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> int:
        # The array's own method: np.argmax's dispatch wrapper costs more than the argmax of a
        # (V,) row, and generation calls this once per token.
        argmax = getattr(logits, "argmax", None)
        if argmax is None:
            import numpy as np
            return int(np.argmax(logits))
        return int(argmax())


class TemperatureDecoder(Decoder):
    """Sample from softmax(logits / T); T = 0 means greedy."""

    name = "temperature"
    description = "sample from softmax(logits / --temperature); 0 = greedy"
    options = (Option("temperature", float, 1.0, "Softmax temperature (0 = greedy).", ge=0),)

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = float(temperature)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        import numpy as np
        if self.temperature == 0:
            return GreedyDecoder().distribution(logits)
        z = np.asarray(logits, dtype=np.float64)
        # Shift before dividing: (z - max) / T is <= 0, so a tiny T sends the others to -inf
        # (probability 0) instead of overflowing z / T to inf and turning the softmax into NaN.
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            p = np.exp((z - z.max()) / self.temperature)
            total = p.sum()
        if not total > 0 or not np.isfinite(total):  # inf or NaN logits: fall back to the mode
            return GreedyDecoder().distribution(logits)
        return p / total

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> int:
        import numpy as np
        if self.temperature == 0:
            return int(np.argmax(logits))
        return super().choose(logits, rng)


class AlphaDecoder(Decoder):
    """Sample from p^alpha renormalised (alpha > 1 sharpens, < 1 flattens)."""

    name = "alpha"
    description = "sample from p^--alpha renormalised"
    options = (Option("alpha", float, 1.0, "Sharpening exponent: > 1 sharpens, < 1 flattens.", gt=0),)

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        import numpy as np
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            p = softmax(logits) ** self.alpha
            total = p.sum()
        if not total > 0 or not np.isfinite(total):  # extreme alpha underflows: fall back to the mode
            return GreedyDecoder().distribution(logits)
        return p / total
