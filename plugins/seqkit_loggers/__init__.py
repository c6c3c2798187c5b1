"""Built-in run watchers: the metrics.jsonl writer (always on) and the TensorBoard logger."""

from seqkit import LazyComponent, hookimpl
from seqkit.hookspecs import Register
from seqkit_loggers.metrics import seqkit_epoch_ended, seqkit_run_started
from seqkit_loggers.options import TENSORBOARD_OPTIONS

__all__ = ["register_loggers", "seqkit_epoch_ended", "seqkit_run_started"]  # the hook implementations


@hookimpl
def register_loggers(register: Register) -> None:
    """Provide the ``tensorboard`` logger (imported on first use; needs tensorboardX)."""
    register(LazyComponent(
        name="tensorboard",
        target="seqkit_loggers.tensorboard:TensorBoardLogger",
        requires=("tensorboardX",),
        install_hint="pip install 'seqkit[tensorboard]'",
        description="TensorBoard event files: perplexities, bits, lr, gradient norm, clipping, tokens/s, samples",
        options=TENSORBOARD_OPTIONS,
    ))
