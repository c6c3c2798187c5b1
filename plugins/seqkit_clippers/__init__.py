"""Built-in clippers: global L2-norm clipping and none."""

from seqkit import hookimpl
from seqkit_clippers.norm import NoClipper, NormClipper


@hookimpl
def register_clippers(register) -> None:
    """Provide the ``norm`` and ``none`` clippers."""
    register(NormClipper)
    register(NoClipper)
