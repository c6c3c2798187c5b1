"""Built-in optimizers: the lesson's plain SGD, and Adam."""

from seqkit import hookimpl
from seqkit_optimizers.updates import SGD, Adam


@hookimpl
def register_optimizers(register) -> None:
    """Provide the ``sgd`` and ``adam`` optimizers."""
    register(SGD)
    register(Adam)
