"""Built-in samplers: d2l's random sampling and sequential partitioning."""

from seqkit import hookimpl
from seqkit_samplers.partition import RandomSampler, SequentialSampler


@hookimpl
def register_samplers(register) -> None:
    """Provide the ``random`` and ``sequential`` samplers."""
    register(RandomSampler)
    register(SequentialSampler)
