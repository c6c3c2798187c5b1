"""Built-in optimizers: the lesson's SGD (with momentum and weight decay), Adam and AdamW."""

from seqkit import hookimpl
from seqkit_optimizers.updates import SGD, Adam, AdamW


@hookimpl
def register_optimizers(register) -> None:
    """Provide the ``sgd``, ``adam`` and ``adamw`` optimizers."""
    register(SGD)
    register(Adam)
    register(AdamW)
