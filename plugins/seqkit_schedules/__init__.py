"""Built-in learning-rate schedules: constant, step decay (the lessons') and cosine, with warm-up."""

from seqkit import hookimpl
from seqkit.hookspecs import Register
from seqkit_schedules.rates import Constant, Cosine, StepDecay


@hookimpl
def register_schedules(register: Register) -> None:
    """Provide the ``step``, ``constant`` and ``cosine`` schedules."""
    register(StepDecay)
    register(Constant)
    register(Cosine)
