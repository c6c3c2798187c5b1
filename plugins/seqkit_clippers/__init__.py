"""Built-in clippers: global L2-norm clipping and none."""

from seqkit import hookimpl
from seqkit_clippers.norm import NoClipper, NormClipper


@hookimpl
def register_clippers(register):
    register(NormClipper)
    register(NoClipper)
